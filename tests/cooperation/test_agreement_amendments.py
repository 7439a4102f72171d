"""A cooperation agreement's term after signing: it is no longer edited in place but amended (补充协议) — new term,
reason, effective date, optional signed copy — by those who manage the agreement, with the version they loaded and
once per form; the agreement's text keeps the term signed, the amendment has its own bilingual text, the page shows
the history and a renewal reminder follows the new end. The same implementation as the key-account agreements'
(core/amendments.py)."""

from __future__ import annotations

import datetime as dt
import io
import re

import pytest
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone, translation
from pypdf import PdfReader

from pharmacrm.cooperation import services
from pharmacrm.cooperation.models import Agreement, AgreementAmendment
from pharmacrm.core.models import AuditEntry
from pharmacrm.notify.models import Notification
from tests.keyaccounts.programme_fixtures import tiny_pdf

from .test_cooperation import data, in_force, running_project

pytestmark = pytest.mark.django_db
TODAY = timezone.localdate


@pytest.fixture(autouse=True)
def private_var(settings, tmp_path):
    settings.VAR_DIR = tmp_path / "var"
    settings.VAR_DIR.mkdir()


@pytest.fixture
def api_client(users):
    """api_client(role) → an API client with that role's token, asking for English."""
    from rest_framework.test import APIClient

    from tests.api.conftest import token_for

    def make(role: str) -> APIClient:
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Token {token_for(users[role])}", HTTP_ACCEPT_LANGUAGE="en")
        return client

    return make


@pytest.fixture
def ours(users, xiehe, team_north):
    """An agreement in force that the rep looks after (北京协和医院, owned by the rep's North team)."""
    xiehe.owner, xiehe.team = users["rep"], team_north
    xiehe.save(update_fields=["owner", "team"])
    agreement = services.create_agreement(users["rep"], data(xiehe, users["rep"], team=team_north.pk))
    return in_force(users["rep"], agreement)


def _text(data: bytes) -> str:
    return "".join(page.extract_text() for page in PdfReader(io.BytesIO(data)).pages).replace("\x00", "")


def _words(response) -> str:
    return " ".join(re.sub(r"<[^>]+>", " ", response.content.decode()).split())


def _form(agreement, end, *, reason="项目延期，双方协商延长合作期", token="", version=None, **extra):
    return {"action": "amend", "version": agreement.version if version is None else version,
            "amend-start_date": agreement.start_date.isoformat(), "amend-end_date": end.isoformat(),
            "amend-effective_date": TODAY().isoformat(), "amend-reason": reason, "amend-form_token": token,
            **extra}  # fmt: skip


def test_an_amendment_on_the_page_changes_the_term_and_keeps_the_signed_text(users, ours, client_for):
    old_start, old_end = ours.start_date, ours.end_date
    new_end = old_end + dt.timedelta(days=90)
    url = f"/cooperation/{ours.pk}/"
    scan = tiny_pdf()
    r = client_for("rep").post(url, _form(ours, new_end, **{"amend-signed_copy": SimpleUploadedFile(
        "补充协议.pdf", scan, "application/pdf")}), HTTP_ACCEPT_LANGUAGE="en")  # fmt: skip
    assert r.status_code == 302, _words(r)[:1500]
    ours.refresh_from_db()
    amendment = AgreementAmendment.objects.get(agreement=ours)
    assert (ours.start_date, ours.end_date) == (old_start, new_end)
    assert (amendment.number, amendment.previous_end) == (f"{ours.number}-A1", old_end)
    # the agreement's text keeps the term it was signed with; the amendment's says both
    signed_text = _text(client_for("rep").get(f"/cooperation/{ours.pk}/agreement.pdf").content)
    assert old_end.isoformat() in signed_text and new_end.isoformat() not in signed_text
    text = _text(client_for("manager").get(f"/cooperation/{ours.pk}/amendments/1/pdf/").content)
    assert "补充协议" in text and "《合作协议》" in text and ours.number in text
    assert old_end.isoformat() in text and new_end.isoformat() in text and "项目延期" in text
    copy = client_for("rep").get(f"/cooperation/{ours.pk}/amendments/1/signed-copy/")
    assert copy.status_code == 200 and b"".join(copy.streaming_content) == scan
    # the history, for every reader of the agreement (the analyst reads them all)
    page = _words(client_for("analyst").get(url, HTTP_ACCEPT_LANGUAGE="en"))
    assert f"{ours.number}-A1" in page and "项目延期，双方协商延长合作期" in page
    assert f"as signed: {old_start.isoformat()} – {old_end.isoformat()}; amended once" in page
    assert "Record the amendment" not in page  # the analyst reads, never amends
    created = AuditEntry.objects.get(object_type="cooperation.agreementamendment", action="create")
    assert created.changes["end_date"] == [None, new_end.isoformat()] and created.actor_id == users["rep"].pk
    changed = AuditEntry.objects.filter(object_type="cooperation.agreement", object_id=str(ours.pk),
                                        action="update").latest("seq")  # fmt: skip
    assert changed.changes["end_date"] == [old_end.isoformat(), new_end.isoformat()]
    assert changed.extra["amendment"] == amendment.number


def test_without_a_reason_or_starting_after_a_project_it_is_refused_and_nothing_written(users, ours, client_for):
    end = ours.end_date
    r = client_for("rep").post(f"/cooperation/{ours.pk}/", _form(ours, end + dt.timedelta(days=5), reason=""),
                               HTTP_ACCEPT_LANGUAGE="zh-hans")  # fmt: skip
    assert r.status_code == 400
    with translation.override("zh-hans"):
        assert str(services._("Say why the term changes: the reason is part of the amendment.")) in r.content.decode()
    project = running_project(users["rep"], ours)
    with translation.override("en"), pytest.raises(ValidationError) as late_start:
        services.amend_term(users["rep"], ours, {"start_date": ours.start_date + dt.timedelta(days=3), "end_date": end,
                                                 "reason": "推迟", "effective_date": TODAY()}, ours.version)  # fmt: skip
    assert project.title in late_start.value.message_dict["start_date"][0]
    with translation.override("en"), pytest.raises(ValidationError) as backwards:
        services.amend_term(users["rep"], ours, {"start_date": ours.start_date, "end_date": ours.start_date -
                                                 dt.timedelta(days=1), "reason": "x", "effective_date": TODAY()},
                            ours.version)  # fmt: skip
    assert list(backwards.value.message_dict) == ["end_date"]
    ours.refresh_from_db()
    assert ours.end_date == end and not ours.amendments.exists()


def test_a_draft_is_not_amended_and_a_signed_term_is_not_edited(users, xiehe, ours, api_client):
    draft = services.create_agreement(users["manager"], data(xiehe, users["manager"]))
    with translation.override("en"), pytest.raises(ValidationError) as refused:
        services.amend_term(users["manager"], draft, {"start_date": draft.start_date, "end_date": draft.end_date +
                                                      dt.timedelta(days=1), "reason": "x", "effective_date": TODAY()},
                            draft.version)  # fmt: skip
    assert refused.value.message_dict["status"] == ["This agreement is not signed yet: correct its term instead of "
                                                    "amending it."]  # fmt: skip
    r = api_client("rep").patch(f"/api/v1/cooperation/agreements/{ours.pk}/", {
        "end_date": (ours.end_date + dt.timedelta(days=1)).isoformat(), "version": ours.version}, format="json")  # fmt: skip
    assert r.status_code == 400 and "amendment" in r.json()["end_date"][0]


def test_the_renewal_reminder_follows_the_amended_end(users, ours):
    near = TODAY() + dt.timedelta(days=10)
    Agreement.objects.filter(pk=ours.pk).update(end_date=near)
    ours.refresh_from_db()
    assert services.sweep()[0] == 1  # reminded of the end in ten days
    ours.refresh_from_db()
    assert ours.renewal_notified_at is not None
    new_end = TODAY() + dt.timedelta(days=200)
    services.amend_term(users["rep"], ours, {"start_date": ours.start_date, "end_date": new_end, "reason": "续期半年",
                                             "effective_date": TODAY()}, ours.version)  # fmt: skip
    ours.refresh_from_db()
    assert ours.renewal_notified_at is None and ours.end_date == new_end
    assert services.sweep()[0] == 0  # not now: 30 days before the new end
    later = timezone.make_aware(dt.datetime.combine(new_end - dt.timedelta(days=20), dt.time(9)))
    assert services.sweep(now=later)[0] == 1
    assert new_end.isoformat() in str(Notification.objects.filter(kind="cooperation.renewal").latest("pk").title)


def test_the_amendment_form_sent_twice_records_one_and_a_stale_page_none(users, ours, client_for):
    client = client_for("rep")
    form = _form(ours, ours.end_date + dt.timedelta(days=30), token="a" * 32)
    assert client.post(f"/cooperation/{ours.pk}/", form).status_code == 302
    again = client.post(f"/cooperation/{ours.pk}/", form, HTTP_ACCEPT_LANGUAGE="en")
    assert again.status_code == 302
    assert AgreementAmendment.objects.filter(agreement=ours).count() == 1
    stale = client_for("manager").post(f"/cooperation/{ours.pk}/", _form(ours, ours.end_date + dt.timedelta(days=60),
                                                                        token="b" * 32), HTTP_ACCEPT_LANGUAGE="en")  # fmt: skip
    assert stale.status_code == 409 and "Someone else changed this record" in _words(stale)
    assert AgreementAmendment.objects.filter(agreement=ours).count() == 1


def test_the_api_records_an_amendment_with_its_history(users, ours, api_client):
    url = f"/api/v1/cooperation/agreements/{ours.pk}/amendments/"
    new_end = ours.end_date + dt.timedelta(days=40)
    body = {"start_date": ours.start_date.isoformat(), "end_date": new_end.isoformat(),
            "effective_date": TODAY().isoformat(), "version": ours.version}  # fmt: skip
    assert list(api_client("rep").post(url, body, format="json").json()) == ["reason"]
    r = api_client("rep").post(url, {**body, "reason": "延期"}, format="json")
    assert r.status_code == 201, r.content
    got = r.json()
    assert got["end_date"] == new_end.isoformat() and got["signed_end_date"] == ours.end_date.isoformat()
    assert [a["number"] for a in got["amendments"]] == [f"{ours.number}-A1"]
    assert api_client("rep").post(url, {**body, "reason": "再次"}, format="json").status_code == 409
    pdf = api_client("auditor").get(f"/api/v1/cooperation/agreements/{ours.pk}/amendments/1/pdf/")
    assert pdf.status_code == 200 and pdf["Content-Type"] == "application/pdf"


MANAGE_OURS = {"admin", "manager", "rep"}  # leadership, and the rep who looks after it
ROLES = ["admin", "manager", "kam", "agent", "expert", "support", "aftersales", "rep", "pv", "analyst", "auditor"]


@pytest.mark.parametrize("role", ROLES)
def test_who_may_amend(role, users, ours, api_client):
    r = api_client(role).post(f"/api/v1/cooperation/agreements/{ours.pk}/amendments/", {
        "start_date": ours.start_date.isoformat(), "end_date": (ours.end_date + dt.timedelta(days=1)).isoformat(),
        "effective_date": TODAY().isoformat(), "reason": "延期", "version": ours.version}, format="json")  # fmt: skip
    if role in MANAGE_OURS:
        assert r.status_code == 201
        assert ours.amendments.count() == 1
    else:  # no cooperation access, read only, or (the key-account manager) not one of theirs: not even seen
        assert r.status_code == (404 if role == "kam" else 403)
        assert not ours.amendments.exists()


def test_a_key_account_manager_amends_their_own(users, ruijin):
    theirs = in_force(users["kam"], services.create_agreement(users["kam"], data(ruijin, users["kam"])))
    services.amend_term(users["kam"], theirs, {"start_date": theirs.start_date, "end_date": theirs.end_date +
                                               dt.timedelta(days=3), "reason": "延期", "effective_date": TODAY()},
                        theirs.version)  # fmt: skip
    assert theirs.amendments.count() == 1


def test_the_api_refuses_a_signed_copy_too_large_before_reading_it(users, ours, api_client, monkeypatch):
    from pharmacrm.keyaccounts import services as ka

    url = f"/api/v1/cooperation/agreements/{ours.pk}/amendments/"
    body = {"start_date": ours.start_date.isoformat(), "end_date": (ours.end_date + dt.timedelta(days=9)).isoformat(),
            "effective_date": TODAY().isoformat(), "reason": "延期", "version": ours.version}  # fmt: skip
    too_large = {"signed_copy": ["The file is too large; the limit is 20 MB."]}
    # announced larger than the limit: refused before the body is read (the serializer never sees it)
    announced = api_client("rep").post(url, body, format="multipart", CONTENT_LENGTH=str(ka.SIGNED_COPY_MAX * 2))
    assert announced.status_code == 400 and announced.json() == too_large
    monkeypatch.setattr(ka, "SIGNED_COPY_MAX", 1000)  # not announced: the upload stops as soon as it passes the limit
    big = SimpleUploadedFile("big.pdf", b"%PDF" + b"0" * 5000, "application/pdf")
    r = api_client("rep").post(url, {**body, "signed_copy": big}, format="multipart")
    assert r.status_code == 400 and r.json() == too_large
    assert not ours.amendments.exists() and not list(services.files_dir().glob("*-amendment-*"))


def _amended_without_copy(user, agreement):
    return services.amend_term(user, agreement, {"start_date": agreement.start_date, "end_date": agreement.end_date +
                                                 dt.timedelta(days=7), "reason": "延期", "effective_date": TODAY()},
                               agreement.version)  # fmt: skip


def test_the_signed_copy_is_uploaded_later_on_the_page_once(users, ours, client_for):
    amendment = _amended_without_copy(users["rep"], ours)
    page = _words(client_for("rep").get(f"/cooperation/{ours.pk}/", HTTP_ACCEPT_LANGUAGE="en"))
    assert "Upload the signed copy" in page
    assert "Upload the signed copy" not in _words(client_for("analyst").get(f"/cooperation/{ours.pk}/",
                                                                             HTTP_ACCEPT_LANGUAGE="en"))  # fmt: skip
    url = f"/cooperation/{ours.pk}/amendments/1/signed-copy/upload/"
    png = SimpleUploadedFile("签字页.png", _png(), "image/png")
    r = client_for("rep").post(url, {"signed_copy": png}, HTTP_ACCEPT_LANGUAGE="en", follow=True)
    assert f"The signed copy of amendment {amendment.number} was kept." in _words(r)
    amendment.refresh_from_db()
    assert amendment.signed_copy_name == "签字页.png" and amendment.signed_copy.endswith(".png")
    copy = client_for("analyst").get(f"/cooperation/{ours.pk}/amendments/1/signed-copy/")
    assert copy.status_code == 200 and copy["Content-Type"] == "image/png"
    entry = AuditEntry.objects.get(object_type="cooperation.agreementamendment", action="update")
    assert entry.changes == {"signed_copy": [None, amendment.signed_copy]} and entry.actor_id == users["rep"].pk
    refused = client_for("manager").post(url, {"signed_copy": SimpleUploadedFile("x.pdf", tiny_pdf(), "application/pdf")},
                                         HTTP_ACCEPT_LANGUAGE="en", follow=True)  # fmt: skip
    assert "has its signed copy already (签字页.png)" in _words(refused)
    amendment.refresh_from_db()
    assert amendment.signed_copy_name == "签字页.png"
    # a body announced over the limit: refused before it is read
    big = client_for("rep").post(url, {}, CONTENT_LENGTH=str(30 * 1024 * 1024), HTTP_ACCEPT_LANGUAGE="en", follow=True)
    assert "The file is too large; the limit is 20 MB." in _words(big)


def _png() -> bytes:
    from tests.keyaccounts.programme_fixtures import tiny_png

    return tiny_png()


@pytest.mark.parametrize("role", ROLES)
def test_who_may_upload_an_amendments_signed_copy_later(role, users, ours, api_client):
    amendment = _amended_without_copy(users["rep"], ours)
    r = api_client(role).post(f"/api/v1/cooperation/agreements/{ours.pk}/amendments/1/signed-copy/upload/",
                              {"signed_copy": SimpleUploadedFile("s.pdf", tiny_pdf(), "application/pdf")},
                              format="multipart")  # fmt: skip
    amendment.refresh_from_db()
    if role in MANAGE_OURS:
        assert r.status_code == 200, r.content
        assert r.json()["amendments"][0]["signed_copy_name"] == "s.pdf" and amendment.signed_copy
    else:
        assert r.status_code == (404 if role == "kam" else 403)
        assert not amendment.signed_copy


def test_an_amendment_effective_later_is_applied_on_its_day_and_the_agreement_does_not_expire(users, ours, client_for):
    old_end = ours.end_date
    takes_effect, new_end = old_end + dt.timedelta(days=1), old_end + dt.timedelta(days=365)
    r = client_for("rep").post(f"/cooperation/{ours.pk}/", {**_form(ours, new_end),
                                                            "amend-effective_date": takes_effect.isoformat()})  # fmt: skip
    assert r.status_code == 302
    ours.refresh_from_db()
    amendment = ours.amendments.get()
    assert ours.end_date == old_end and amendment.applied_at is None
    page = _words(client_for("rep").get(f"/cooperation/{ours.pk}/", HTTP_ACCEPT_LANGUAGE="en"))
    assert f"amended from {takes_effect.isoformat()}: new term" in page and "Record the amendment" not in page
    api = client_for("rep").get(f"/api/v1/cooperation/agreements/{ours.pk}/").json()
    assert api["end_date"] == old_end.isoformat() and api["amendments"][0]["applied_at"] is None
    # the day before: still the current term; on its day the sweep applies it before the expiry
    services.sweep(now=timezone.make_aware(dt.datetime.combine(old_end, dt.time(10))))
    ours.refresh_from_db()
    assert ours.end_date == old_end and ours.status == "in_force"
    services.sweep(now=timezone.make_aware(dt.datetime.combine(takes_effect, dt.time(1))))
    ours.refresh_from_db()
    amendment.refresh_from_db()
    assert (ours.end_date, ours.status) == (new_end, "in_force") and amendment.applied_at is not None
    assert AuditEntry.objects.filter(object_type="cooperation.agreement", object_id=str(ours.pk),
                                     extra__amendment=amendment.number, actor_name="system").exists()  # fmt: skip


def test_an_expired_agreement_is_extended_and_a_terminated_one_refused_saying_when(users, ours):
    today = TODAY()
    Agreement.objects.filter(pk=ours.pk).update(end_date=today - dt.timedelta(days=5), status="expired")
    ours.refresh_from_db()
    services.amend_term(users["rep"], ours, {"start_date": ours.start_date, "end_date": today + dt.timedelta(days=60),
                                             "reason": "到期后补签延期", "effective_date": today}, ours.version)  # fmt: skip
    ours.refresh_from_db()
    assert (ours.end_date, ours.status) == (today + dt.timedelta(days=60), "in_force")
    services.terminate(users["rep"], ours, ours.version)
    ours.refresh_from_db()
    with translation.override("en"), pytest.raises(ValidationError) as refused:
        services.amend_term(users["rep"], ours, {"start_date": ours.start_date, "end_date": ours.end_date +
                                                 dt.timedelta(days=30), "reason": "x", "effective_date": today},
                            ours.version)  # fmt: skip
    assert refused.value.message_dict["status"] == [
        f"This agreement was terminated on {today.isoformat()}: it stays archived as it is."]


def test_the_agreement_page_refuses_a_signed_copy_too_large_before_reading_it(users, ours, client_for, monkeypatch):
    """The sign and amend forms of the agreement page read the whole upload before checking its 20 MB, while the API
    and the key-account pages refuse it before reading it."""
    from pharmacrm.keyaccounts import services as ka

    url = f"/cooperation/{ours.pk}/"
    end, before = ours.end_date, ours.version
    # announced larger than the limit: refused before the body is read, back on the agreement
    big = client_for("rep").post(url, _form(ours, end + dt.timedelta(days=90)), CONTENT_LENGTH=str(ka.SIGNED_COPY_MAX * 2),
                                 HTTP_ACCEPT_LANGUAGE="en", follow=True)  # fmt: skip
    assert "The file is too large; the limit is 20 MB." in _words(big)
    # not announced: the upload stops as soon as it passes the limit, and the signed copy's field says so
    monkeypatch.setattr(ka, "SIGNED_COPY_MAX", 1000)
    r = client_for("rep").post(url, _form(ours, end + dt.timedelta(days=90), **{"amend-signed_copy": SimpleUploadedFile(
        "big.pdf", b"%PDF" + b"0" * 5000, "application/pdf")}), HTTP_ACCEPT_LANGUAGE="en")  # fmt: skip
    assert r.status_code == 400
    assert r.context["amend_form"].errors["signed_copy"] == ["The file is too large; the limit is 20 MB."]
    ours.refresh_from_db()
    assert (ours.end_date, ours.version) == (end, before) and not ours.amendments.exists()
    assert not list(services.files_dir().glob("*-amendment-*"))
