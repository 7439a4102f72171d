"""A create form is acted on once: the institution, person and consent forms carry a one-time token, and the
same form sent again — a replay after a slow answer, a double click, two requests at once — opens what the
first one created instead of creating a second record."""

from __future__ import annotations

import re
import threading
import time

import pytest
from django.db import connection

from pharmacrm.customers import normalise, services
from pharmacrm.customers.models import Consent, Institution, Person

pytestmark = pytest.mark.django_db

EN = {"HTTP_ACCEPT_LANGUAGE": "en"}
SENT_AGAIN = "This form was already sent"
TOKEN = re.compile(r'<input type="hidden" name="form_token" value="([A-Za-z0-9_-]+)"')


def _token(page: str) -> str:
    match = TOKEN.search(page)
    assert match, "the form carries no one-time token"
    return match.group(1)


def _institution_form(token: str, **overrides) -> dict:
    data = {
        "name": "北京朝阳社区卫生服务中心", "kind": "community", "province": "110000", "city": "110100",
        "district": "110105", "credit_code": normalise.make_credit_code("91110105MA0000001"),
        "phone": "010-65001234", "tier": "regular", "stage": "potential", "form_token": token,
    }  # fmt: skip
    data.update(overrides)
    return data


def _person_form(token: str, institution) -> dict:
    return {"name": "李娜", "role": "doctor", "institution": institution.pk, "tier": "regular", "stage": "potential",
            "mobile": "13900139000", "form_token": token}  # fmt: skip


def _messages(client, url: str) -> str:
    return client.get(url, **EN).content.decode()


def test_the_institution_form_sent_twice_creates_one_institution(client_for):
    client = client_for("agent")
    page = client.get("/customers/institutions/new/", **EN).content.decode()
    assert "data-submit-once" in page.split('id="institution-form"')[1].split(">")[0]
    form = _institution_form(_token(page))
    first = client.post("/customers/institutions/new/", form, **EN)
    inst = Institution.objects.get(name="北京朝阳社区卫生服务中心")
    assert first.status_code == 302 and first["Location"] == f"/customers/institutions/{inst.pk}/"
    again = client.post("/customers/institutions/new/", form, **EN)  # the replay: its credit code is taken now
    assert again.status_code == 302 and again["Location"] == f"/customers/institutions/{inst.pk}/"
    assert Institution.objects.filter(name="北京朝阳社区卫生服务中心").count() == 1
    assert SENT_AGAIN in _messages(client, again["Location"])


def test_a_new_form_has_a_new_token_and_creates_again(client_for):
    client = client_for("agent")
    first = _token(client.get("/customers/institutions/new/").content.decode())
    second = _token(client.get("/customers/institutions/new/").content.decode())
    assert first != second
    client.post("/customers/institutions/new/", _institution_form(first, credit_code="", phone=""))
    client.post("/customers/institutions/new/", _institution_form(second, credit_code="", phone=""))
    assert Institution.objects.filter(name="北京朝阳社区卫生服务中心").count() == 2


def test_a_form_refused_keeps_its_token_and_can_be_sent_again_corrected(client_for):
    client = client_for("agent")
    token = _token(client.get("/customers/institutions/new/").content.decode())
    refused = client.post("/customers/institutions/new/", _institution_form(token, name=""), **EN)
    assert refused.status_code == 200 and _token(refused.content.decode()) == token
    assert not Institution.objects.filter(name="北京朝阳社区卫生服务中心").exists()
    fixed = client.post("/customers/institutions/new/", _institution_form(token), **EN)
    assert fixed.status_code == 302
    assert Institution.objects.filter(name="北京朝阳社区卫生服务中心").count() == 1


def test_another_users_token_is_not_theirs(client_for, users):
    agent, kam = client_for("agent"), client_for("kam")
    token = _token(agent.get("/customers/institutions/new/").content.decode())
    agent.post("/customers/institutions/new/", _institution_form(token, credit_code="", phone=""))
    kam.post("/customers/institutions/new/", _institution_form(token, credit_code="", phone=""))
    assert Institution.objects.filter(name="北京朝阳社区卫生服务中心").count() == 2


def test_the_edit_form_has_no_token(client_for, xiehe):
    page = client_for("admin").get(f"/customers/institutions/{xiehe.pk}/edit/").content.decode()
    assert 'name="form_token"' not in page and 'name="version"' in page


def test_the_person_form_sent_twice_creates_one_person(client_for, xiehe):
    client = client_for("agent")
    page = client.get("/customers/people/new/", **EN).content.decode()
    assert "data-submit-once" in page.split('id="person-form"')[1].split(">")[0]
    form = _person_form(_token(page), xiehe)
    first = client.post("/customers/people/new/", form, **EN)
    person = Person.objects.get(name="李娜")
    assert first.status_code == 302 and first["Location"] == f"/customers/people/{person.pk}/"
    again = client.post("/customers/people/new/", form, **EN)
    assert again.status_code == 302 and again["Location"] == f"/customers/people/{person.pk}/"
    assert Person.objects.filter(name="李娜").count() == 1
    assert SENT_AGAIN in _messages(client, again["Location"])


def test_the_consent_form_sent_twice_records_one_consent(client_for, xiehe):
    doctor = Person.objects.get(name="张伟", institution=xiehe)
    client = client_for("agent")
    page = client.get(f"/customers/people/{doctor.pk}/", **EN).content.decode()
    consent_form = page.split("/consents/new/")[1].split("</form>")[0]
    assert "data-submit-once" in consent_form.split(">")[0]
    form = {"purpose": "marketing", "channel": "phone", "status": "given", "form_token": _token(consent_form)}
    url = f"/customers/people/{doctor.pk}/consents/new/"
    assert client.post(url, form).status_code == 302
    again = client.post(url, form, **EN)
    assert again.status_code == 302 and again["Location"] == f"/customers/people/{doctor.pk}/"
    assert Consent.objects.filter(person=doctor).count() == 1
    assert SENT_AGAIN in _messages(client, again["Location"])


def test_claims_are_forgotten_after_a_week_and_only_then(client_for):
    """The claims live in the database; the daily worker forgets those of forms made more than a week ago
    (and the undated ones of the first version), so the table does not grow with every create."""
    import datetime as dt

    from django.utils import timezone

    from pharmacrm.core.models import Counter
    from pharmacrm.customers import tasks

    client = client_for("agent")
    token = _token(client.get("/customers/institutions/new/").content.decode())
    assert token[:8] == f"{timezone.localdate():%Y%m%d}"  # the form's day opens its token
    assert client.post("/customers/institutions/new/", _institution_form(token)).status_code == 302
    Counter.objects.create(name="form-once:" + "ab" * 24, value=1)  # an undated claim of the first version
    Counter.objects.create(name="test:sequence", value=5)  # a number sequence: never touched
    claims = Counter.objects.filter(name__startswith="form-once:")
    assert claims.count() == 2
    tasks.forget_form_claims.call_local()
    assert claims.count() == 1  # this week's claim stays; the undated one went
    from pharmacrm.customers.views import forget_form_claims

    assert forget_form_claims(timezone.localdate() + dt.timedelta(days=7)) == 0  # a week old: kept
    assert forget_form_claims(timezone.localdate() + dt.timedelta(days=8)) == 1
    assert not claims.exists() and Counter.objects.get(name="test:sequence").value == 5
    # the form sent again after its claim was forgotten creates, as any new form would (its credit code is
    # taken, so the page names that field)
    again = client.post("/customers/institutions/new/", _institution_form(token), **EN)
    assert again.status_code == 200 and Institution.objects.filter(name="北京朝阳社区卫生服务中心").count() == 1


def test_without_a_token_the_form_still_creates(client_for):
    """A page loaded before the token existed, or a script: created as before (one request, one record)."""
    form = _institution_form("")
    del form["form_token"]
    assert client_for("agent").post("/customers/institutions/new/", form).status_code == 302
    assert Institution.objects.filter(name="北京朝阳社区卫生服务中心").count() == 1


@pytest.mark.postgresql
@pytest.mark.django_db(transaction=True)
def test_two_requests_at_once_create_one_institution(client_for, users, monkeypatch):
    """Both requests pass the form's checks before either has created anything (the first one is slow to
    create); the second waits for the first's claim of the token, then opens what the first created."""
    from django.test import Client

    token = _token(client_for("agent").get("/customers/institutions/new/").content.decode())
    form = _institution_form(token, credit_code="", phone="")
    original = services.create_institution

    def slow_create(user, data):
        time.sleep(0.5)
        return original(user, data)

    monkeypatch.setattr(services, "create_institution", slow_create)
    start = threading.Barrier(2, timeout=20)
    results: list = [None, None]

    def post(index: int):
        try:
            c = Client()
            c.force_login(users["agent"])
            start.wait()
            results[index] = c.post("/customers/institutions/new/", form, **EN)
        finally:
            connection.close()

    threads = [threading.Thread(target=post, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    inst = Institution.objects.get(name="北京朝阳社区卫生服务中心")  # one, not two
    assert [r.status_code for r in results] == [302, 302]
    assert {r["Location"] for r in results} == {f"/customers/institutions/{inst.pk}/"}


def test_an_edit_form_sent_twice_saves_once_and_tells_of_no_conflict(client_for, users, xiehe):
    """A double click on Save, or the edit form sent again after a slow answer: the second request, made from the
    version the first one saved over, was answered "Someone else changed this record while you were editing it"
    (409) — nobody had. A change by someone else in between, or another value, is still a conflict."""
    from pharmacrm.core.models import AuditEntry
    from pharmacrm.customers.forms import institution_initial

    client, url = client_for("kam"), f"/customers/institutions/{xiehe.pk}/edit/"
    form = {k: ("" if v is None else v) for k, v in institution_initial(xiehe).items()}
    form.update({"province": "110000", "city": "110100", "district": "110105", "address": "东城区帅府园1号"})

    first, second = client.post(url, form, **EN), client.post(url, form, **EN)

    assert (first.status_code, second.status_code) == (302, 302)
    updates = AuditEntry.objects.filter(action="update", object_type="customers.institution", object_id=str(xiehe.pk))
    assert updates.count() == 1 and Institution.objects.get(pk=xiehe.pk).version == xiehe.version + 1
    # two requests that read the record before either wrote (a double click on a busy server): one write, no conflict
    early = Institution.objects.get(pk=xiehe.pk)
    services.update_institution(users["kam"], Institution.objects.get(pk=xiehe.pk), {"beds": 2100}, version=early.version)
    assert services.update_institution(users["kam"], early, {"beds": 2100}, version=early.version).beds == 2100
    assert updates.count() == 2
    services.update_institution(users["manager"], Institution.objects.get(pk=xiehe.pk), {"notes": "改"},
                                version=early.version + 1)  # fmt: skip
    assert client.post(url, {**form, "version": early.version}, **EN).status_code == 409
    with pytest.raises(services.ConflictError):
        services.update_institution(users["kam"], Institution.objects.get(pk=xiehe.pk), {"beds": 2200},
                                    version=early.version + 1)  # fmt: skip


def test_beds_typed_with_a_thousands_separator_or_in_full_width_are_the_number_meant(client_for):
    """1,200 beds, as a hospital's profile writes them, or １２００ from an input method in full-width mode: the
    number input sent nothing for the first."""
    client = client_for("agent")
    page = client.get("/customers/institutions/new/", **EN).content.decode()
    assert 'type="number"' not in page.split('name="beds"')[0].rsplit("<input", 1)[1]
    r = client.post("/customers/institutions/new/", _institution_form(_token(page), beds="1,200"), **EN)
    assert r.status_code == 302, r.content.decode()[:2000]
    assert Institution.objects.get(name="北京朝阳社区卫生服务中心").beds == 1200
    page = client.get("/customers/institutions/new/", **EN).content.decode()
    r = client.post("/customers/institutions/new/", _institution_form(
        _token(page), name="另一家卫生服务中心", credit_code="", beds="约1200"), **EN)  # fmt: skip
    assert r.status_code in (200, 400) and "Beds: enter a whole number, such as 12 or 1,200." in r.content.decode()
