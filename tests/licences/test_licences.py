"""Customers' licences (客户资质证照, GSP's check of the buyer's qualification): each number's rules named per field, the
customer's qualification (required kinds, verified, in force), verification by a second person only, a correction
clearing the verification, a stale edit refused, reminders sent once, who reads, records and verifies on the pages
and the API — on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import io
from urllib.parse import unquote

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.utils import timezone, translation
from openpyxl import load_workbook

from pharmacrm.core.models import AuditEntry
from pharmacrm.customers import normalise
from pharmacrm.customers import services as customers
from pharmacrm.customers.models import Institution
from pharmacrm.customers.services import ConflictError
from pharmacrm.licences import services
from pharmacrm.licences.models import Licence
from pharmacrm.notify.models import Notification
from tests.api.conftest import token_for

TODAY = timezone.localdate
PRACTICE = "PDY60006X11010217A1001"


def practice(**extra):
    return {"kind": "medical_practice", "number": PRACTICE, "issuer": "北京市卫生健康委员会",
            "issued_on": TODAY() - dt.timedelta(days=400), "valid_until": TODAY() + dt.timedelta(days=900), **extra}  # fmt: skip


@pytest.fixture
def pharmacy(users, beijing, team_north):
    """A Beijing pharmacy the rep owns, in the North team (led by the manager)."""
    team_north.lead = users["manager"]
    team_north.save(update_fields=["lead"])
    return customers.create_institution(users["admin"], {
        "name": "北京同仁堂朝阳药店", "kind": "pharmacy", "region": beijing, "owner": users["rep"], "team": team_north,
        "credit_code": normalise.make_credit_code("91110105MA0000000")})  # fmt: skip


def broken(code: str) -> str:
    return code[:-1] + ("1" if code[-1] != "1" else "2")


def errors_of(institution, data) -> dict:
    with pytest.raises(ValidationError) as e, translation.override("en"):
        services.clean(institution, data)
    return e.value.message_dict


def test_each_number_and_date_is_checked_and_the_error_names_the_field(pharmacy, xiehe):
    assert set(errors_of(pharmacy, {})) == {"kind", "number"}
    wrong_code = errors_of(pharmacy, {"kind": "business", "number": normalise.make_credit_code("91110105MA1111111")})
    assert "must be the customer's unified social credit code" in wrong_code["number"][0]
    assert "unified social credit code" in errors_of(pharmacy, {"kind": "business", "number": broken(pharmacy.credit_code)})["number"][0]
    trading = errors_of(pharmacy, {"kind": "drug_trading", "number": "AB1234567", "scope": ["chemical"],
                                   "valid_until": TODAY()})  # fmt: skip
    assert list(trading) == ["number"] and "京AA1234567" in trading["number"][0]
    # a trading licence is never long-term and lists its business scope; the scope is one of the printed categories
    assert set(errors_of(pharmacy, {"kind": "drug_trading", "number": "京AA1234567"})) == {"scope", "valid_until"}
    assert "scope" in errors_of(pharmacy, {"kind": "drug_trading", "number": "京AA1234567", "scope": ["cosmetics"],
                                           "valid_until": TODAY()})  # fmt: skip
    dates = errors_of(xiehe, practice(issued_on=TODAY() + dt.timedelta(days=1), valid_until="2026-02-30"))
    assert set(dates) == {"issued_on", "valid_until"}
    assert errors_of(xiehe, practice(issued_on=TODAY(), valid_until=TODAY() - dt.timedelta(days=1)))["valid_until"]
    # what is accepted is kept as the licence prints it: spaces gone, letters upper case, the scope in its own order
    assert services.clean(pharmacy, {"kind": "drug_trading", "number": " 京aa 123456789 ", "valid_until": TODAY(),
                                     "scope": ["biological", "chemical", "chemical"]})["scope"] == ["chemical", "biological"]  # fmt: skip
    assert services.clean(pharmacy, {"kind": "business", "number": pharmacy.credit_code})["valid_until"] is None


def test_a_customer_is_qualified_once_a_second_person_verified_every_required_licence(pharmacy, users):
    q = services.qualification(pharmacy)
    assert (q.ok, q.missing) == (False, ["business", "drug_trading"])
    business = services.create(users["rep"], pharmacy, {"kind": "business", "number": pharmacy.credit_code})
    trading = services.create(users["rep"], pharmacy, {"kind": "drug_trading", "number": "京AA1234567",
                                                       "scope": ["chemical"], "valid_until": TODAY() + dt.timedelta(days=30)})  # fmt: skip
    q = services.qualification(pharmacy)
    assert (q.ok, q.missing, q.unverified) == (False, [], ["business", "drug_trading"])
    with pytest.raises(PermissionDenied):  # a rep may record, not verify
        services.verify(users["rep"], business, business.version)
    services.verify(users["pv"], business, business.version)
    services.verify(users["manager"], trading, trading.version)
    q = services.qualification(pharmacy)
    assert q.ok and [x.status for x in q.expiring] == ["expiring"]  # within the 60 days' notice
    # the same licence sent twice is recorded once
    with pytest.raises(ValidationError, match="already recorded"), translation.override("en"):
        services.create(users["rep"], pharmacy, {"kind": "business", "number": pharmacy.credit_code})
    # once the trading licence has expired, the customer is no longer qualified: it is missing again
    q = services.qualification(pharmacy, today=TODAY() + dt.timedelta(days=31))
    assert (q.ok, q.missing) == (False, ["drug_trading"])
    assert AuditEntry.objects.filter(object_type="licences.licence", action="update").count() == 2


def test_whoever_recorded_or_corrected_a_licence_cannot_verify_it_and_a_correction_clears_the_check(xiehe, users):
    licence = services.create(users["manager"], xiehe, practice())
    with pytest.raises(ValidationError, match="Someone other"), translation.override("en"):
        services.verify(users["manager"], licence, licence.version)
    services.verify(users["pv"], licence, licence.version)
    assert services.status_of(licence) == "valid"
    stale = licence.version - 1
    with pytest.raises(ConflictError):
        services.update(users["kam"], licence, {"valid_until": TODAY() + dt.timedelta(days=1000)}, stale)
    licence = services.update(users["kam"], licence,
                              {"valid_until": TODAY() + dt.timedelta(days=1000)}, licence.version)
    assert (licence.verified_at, licence.recorded_by_id, services.status_of(licence)) == (None, users["kam"].pk, "unverified")
    # the manager who corrects it next becomes the one who cannot check it
    licence = services.update(users["manager"], licence, {"issuer": "北京市东城区卫生健康委员会"}, licence.version)
    with pytest.raises(ValidationError, match="Someone other"), translation.override("en"):
        services.verify(users["manager"], licence, licence.version)
    services.verify(users["admin"], licence, licence.version)
    assert Licence.objects.get(pk=licence.pk).verified_by_id == users["admin"].pk


def test_the_owner_and_the_team_lead_are_told_once_ahead_and_once_when_it_expired(pharmacy, users):
    trading = services.create(users["rep"], pharmacy, {"kind": "drug_trading", "number": "京AA7654321",
                                                       "scope": ["chemical"], "valid_until": TODAY() + dt.timedelta(days=20)})  # fmt: skip
    services.create(users["rep"], pharmacy, {"kind": "business", "number": pharmacy.credit_code})  # long-term: never
    assert services.remind() == (1, 0)
    assert services.remind() == (0, 0)  # a second run (or a second worker) sends nothing again
    notes = Notification.objects.filter(kind="licences.expiry")
    assert sorted(n.recipient.username for n in notes) == ["manager", "rep"]
    assert services.remind(today=trading.valid_until + dt.timedelta(days=1)) == (0, 1)
    assert services.remind(today=trading.valid_until + dt.timedelta(days=2)) == (0, 0)
    # a new end of validity starts a new clock
    trading.refresh_from_db()
    services.update(users["rep"], trading, {"valid_until": TODAY() + dt.timedelta(days=10)}, trading.version)
    assert services.remind() == (1, 0)


def test_who_reads_records_and_verifies_on_the_pages(xiehe, ruijin, users, client_for, team_north):
    xiehe.owner, xiehe.team = users["rep"], team_north
    xiehe.save(update_fields=["owner", "team"])
    licence = services.create(users["kam"], ruijin, practice(number="PDY60006X31010417A1001"))
    rep = client_for("rep")
    # the rep records for a customer in the territory, not for one outside it (which it cannot see at all)
    assert rep.get(f"/licences/new/{xiehe.pk}/").status_code == 200
    answer = rep.post(f"/licences/new/{xiehe.pk}/", {"kind": "medical_practice", "number": "bad number!",
                                                     "valid_until": "2029-01-01"}, HTTP_ACCEPT_LANGUAGE="en")  # fmt: skip
    assert answer.status_code == 400 and "8 to 40 letters and digits" in answer.content.decode()
    assert not Licence.objects.filter(institution=xiehe).exists()
    answer = rep.post(f"/licences/new/{xiehe.pk}/", {"kind": "medical_practice", "number": PRACTICE,
                                                     "valid_until": "2029-01-01"})  # fmt: skip
    assert answer.status_code == 302 and Licence.objects.filter(institution=xiehe, number=PRACTICE).exists()
    assert rep.get(f"/licences/new/{ruijin.pk}/").status_code == 404
    assert rep.get(f"/licences/customer/{ruijin.pk}/").status_code == 404
    assert rep.get(f"/licences/{licence.pk}/edit/").status_code == 404
    # the agent reads the block (every customer), records nothing; the auditor reads the list, changes nothing
    agent = client_for("agent")
    block = agent.get(f"/licences/customer/{ruijin.pk}/", HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert "PDY60006X31010417A1001" in block and "Record a licence" not in block and "Not verified yet" in block
    assert agent.get(f"/licences/new/{ruijin.pk}/").status_code == 403
    auditor = client_for("auditor")
    assert "PDY60006X31010417A1001" in auditor.get("/licences/?status=").content.decode()
    assert auditor.post(f"/licences/{licence.pk}/verify/", {"version": licence.version}).status_code == 403
    assert Licence.objects.get(pk=licence.pk).verified_at is None
    # quality verifies from the customer's page; the list of customers lacking a licence then drops 瑞金
    pv = client_for("pv")
    assert ruijin.name in pv.get("/licences/unqualified/").content.decode()
    assert pv.post(f"/licences/{licence.pk}/verify/", {"version": licence.version}).status_code == 302
    assert Licence.objects.get(pk=licence.pk).verified_by_id == users["pv"].pk
    assert ruijin.name not in pv.get("/licences/unqualified/").content.decode()
    # a customer named like a formula is text in the export, never a formula the reader's Excel runs
    Institution.objects.filter(pk=ruijin.pk).update(name='=HYPERLINK("http://evil.example","瑞金")')
    export = client_for("manager").get("/licences/?status=&format=xlsx", HTTP_ACCEPT_LANGUAGE="en")
    assert export.status_code == 200 and export["Content-Type"].startswith("application/vnd.openxmlformats")
    assert AuditEntry.objects.filter(action="export", actor=users["manager"]).exists()
    assert "filename=\"Customer-licences-" in export["Content-Disposition"] and "no-store" in export["Cache-Control"]
    cells = [c for row in load_workbook(io.BytesIO(export.content)).active.iter_rows(min_row=2) for c in row[:1]]
    assert [(c.value, c.data_type) for c in cells if "HYPERLINK" in str(c.value)] == [
        ('=HYPERLINK("http://evil.example","瑞金")', "s")]
    # a phone number typed into the search is masked in the export's audit entry, as the customer exports mask it
    client_for("manager").get("/licences/?status=&format=xlsx&q=电话13970412390,")
    kept = AuditEntry.objects.filter(action="export", actor=users["manager"]).order_by("-seq").first()
    assert "13970412390" not in str(kept.extra) and "139****2390" in unquote(str(kept.extra["filters"]))
    for lang, word in (("zh-hans", "执业许可证"), ("en", "practising licence"), ("zh-hant", "執業許可證")):
        assert word in pv.get(f"/licences/customer/{ruijin.pk}/", HTTP_ACCEPT_LANGUAGE=lang).content.decode()


def test_the_api_scopes_records_and_verifies(xiehe, ruijin, users):
    from rest_framework.test import APIClient

    def api(role):
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Token {token_for(users[role])}", HTTP_ACCEPT_LANGUAGE="en")
        return client

    other = services.create(users["kam"], ruijin, practice(number="PDY60006X31010417A1001"))
    made = api("rep").post("/api/v1/licences/", {"institution": xiehe.pk, "kind": "medical_practice",
                                                  "number": PRACTICE, "valid_until": "2029-01-01"}, format="json")  # fmt: skip
    assert made.status_code == 201 and made.json()["status"] == "unverified"
    assert api("rep").post("/api/v1/licences/", {"institution": ruijin.pk, "kind": "medical_practice",
                                                  "number": PRACTICE, "valid_until": "2029-01-01"}, format="json").json() == {
        "institution": ["No such customer, or one you may not see."]}  # fmt: skip
    assert [x["id"] for x in api("rep").get("/api/v1/licences/").json()["results"]] == [made.json()["id"]]
    bad = api("kam").post("/api/v1/licences/", {"institution": ruijin.pk, "kind": "drug_trading", "number": "沪XX1"},
                          format="json")  # fmt: skip
    assert bad.status_code == 400 and set(bad.json()) >= {"number", "scope", "valid_until"}
    assert api("kam").post(f"/api/v1/licences/{other.pk}/verify/", {"version": other.version}, format="json").status_code == 403
    stale = api("pv").post(f"/api/v1/licences/{other.pk}/verify/", {"version": other.version + 5}, format="json")
    assert stale.status_code == 409
    done = api("pv").post(f"/api/v1/licences/{other.pk}/verify/", {"version": other.version}, format="json")
    assert done.status_code == 200 and done.json()["status"] == "valid"
    assert [x["id"] for x in api("agent").get("/api/v1/licences/?status=unverified").json()["results"]] == [made.json()["id"]]
    assert api("auditor").patch(f"/api/v1/licences/{other.pk}/", {"issuer": "x", "version": 2}, format="json").status_code == 403


def test_a_garbled_version_is_a_stale_edit_not_a_server_error(xiehe, users):
    """A version that is no number (a script's "abc", "²", forty digits) is refused as stale, nothing changed."""
    from pharmacrm.engagement import services as engagement

    licence = services.create(users["manager"], xiehe, practice())
    visit = engagement.record_interaction(users["rep"], {"institution": xiehe, "channel": "visit", "subject": "拜访"})
    for garbled in ("abc", "²", "9" * 40, "١"):
        with pytest.raises(ConflictError):
            services.update(users["kam"], licence, {"valid_until": TODAY() + dt.timedelta(days=700)}, garbled)
        with pytest.raises(ConflictError):
            services.verify(users["pv"], licence, garbled)
        with pytest.raises(ConflictError):
            engagement.update_interaction(users["rep"], visit, {"subject": "再次拜访"}, version=garbled)
    licence.refresh_from_db()
    visit.refresh_from_db()
    assert (licence.verified_at, visit.subject) == (None, "拜访")


def test_the_new_licence_form_sent_twice_records_one(users, client_for, xiehe, team_north):
    """A double click on Save answered the second time that the licence number was recorded already (the first had
    recorded it); the form now carries a one-time token: the second sending records nothing and shows the
    customer's page, where the licence is."""
    import re

    xiehe.owner, xiehe.team = users["rep"], team_north
    xiehe.save(update_fields=["owner", "team"])
    rep = client_for("rep")
    page = rep.get(f"/licences/new/{xiehe.pk}/").content.decode()
    assert "Form token" not in page  # hidden, not a field to fill in
    form = {**practice(), "form_token": re.search(r'name="form_token" value="([A-Za-z0-9_-]+)"', page).group(1)}

    first = rep.post(f"/licences/new/{xiehe.pk}/", form)
    again = rep.post(f"/licences/new/{xiehe.pk}/", form, follow=True, HTTP_ACCEPT_LANGUAGE="en")

    assert first.status_code == 302 and Licence.objects.filter(institution=xiehe).count() == 1
    assert again.redirect_chain[-1][0] == f"/customers/institutions/{xiehe.pk}/"
    assert "This form was already sent" in again.content.decode()


def test_the_business_scope_is_listed_with_the_readers_separator(pharmacy, users, client_for):
    """An English reader saw the scope of a trading licence joined with the Chinese enumeration comma
    ("Chemical preparations (化学药制剂)、Biological products (生物制品)") on the customer's page and in the export."""
    services.create(users["rep"], pharmacy, {"kind": "drug_trading", "number": "京AA1234567",
                                             "scope": ["chemical", "biological"],
                                             "valid_until": TODAY() + dt.timedelta(days=300)})  # fmt: skip
    manager = client_for("manager")
    block = manager.get(f"/licences/customer/{pharmacy.pk}/", HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert "Chemical preparations (化学药制剂), Biological products (生物制品)" in block and "制剂)、" not in block
    export = manager.get("/licences/?status=&format=xlsx", HTTP_ACCEPT_LANGUAGE="en")
    scopes = [row[3] for row in load_workbook(io.BytesIO(export.content)).active.iter_rows(min_row=2, values_only=True)]
    assert scopes == ["Chemical preparations (化学药制剂), Biological products (生物制品)"]
    # a Chinese reader keeps 、 between the categories
    block = manager.get(f"/licences/customer/{pharmacy.pk}/", HTTP_ACCEPT_LANGUAGE="zh-hans").content.decode()
    assert "化学药制剂、生物制品" in block
