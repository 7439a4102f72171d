"""An amendment of a cooperation agreement's term signed ahead of its effective date (core/amendments.py) while it
waits for its day: terminating the agreement before then makes it lapse — never applied, shown, audited, in the API,
the terminate button saying so beforehand, nothing written when the termination is refused — and the renewal reminder
follows the end the agreement will have once it applies. The worker's sweep is driven with given days."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from pharmacrm.cooperation import services
from pharmacrm.cooperation.models import Agreement, AgreementAmendment
from pharmacrm.core.models import AuditEntry
from pharmacrm.customers.services import ConflictError
from pharmacrm.notify.models import Notification

from .test_cooperation import data, in_force, running_project

pytestmark = pytest.mark.django_db
TODAY = timezone.localdate


@pytest.fixture(autouse=True)
def private_var(settings, tmp_path):
    settings.VAR_DIR = tmp_path / "var"
    settings.VAR_DIR.mkdir()


@pytest.fixture
def ours(users, xiehe, team_north):
    """An agreement in force that the rep looks after (北京协和医院, owned by the rep's North team), from 30 days ago to
    335 days ahead."""
    xiehe.owner, xiehe.team = users["rep"], team_north
    xiehe.save(update_fields=["owner", "team"])
    agreement = services.create_agreement(users["rep"], data(xiehe, users["rep"], team=team_north.pk))
    return in_force(users["rep"], agreement)


def _words(response) -> str:
    return " ".join(re.sub(r"<[^>]+>", " ", response.content.decode()).split())


def _at(day: dt.date, hour: int = 1) -> dt.datetime:
    return timezone.make_aware(dt.datetime.combine(day, dt.time(hour)))


def _amend(users, agreement, end, effective):
    amendment = services.amend_term(users["rep"], agreement, {
        "start_date": agreement.start_date, "end_date": end, "reason": "项目调整，双方协商变更合作期",
        "effective_date": effective}, agreement.version)  # fmt: skip
    agreement.refresh_from_db()
    return amendment


def _reminders() -> list[str]:
    return [str(n.title) for n in Notification.objects.filter(kind="cooperation.renewal").order_by("pk")]


def test_terminating_before_its_day_makes_the_waiting_amendment_lapse_saying_so_beforehand(users, ours, client_for):
    today = TODAY()
    old_end, takes_effect = ours.end_date, today + dt.timedelta(days=20)
    amendment = _amend(users, ours, today + dt.timedelta(days=400), takes_effect)
    page = _words(client_for("rep").get(f"/cooperation/{ours.pk}/", HTTP_ACCEPT_LANGUAGE="en"))
    assert (f"Amendment {amendment.number} takes effect on {takes_effect.isoformat()}: terminating the agreement "
            "before then, it lapses and is never applied.") in page  # fmt: skip
    r = client_for("rep").post(f"/cooperation/{ours.pk}/", {"action": "terminate", "version": ours.version})
    assert r.status_code == 302
    ours.refresh_from_db()
    amendment.refresh_from_db()
    assert ours.status == "terminated" and amendment.state == "lapsed" and amendment.lapse_cause == "terminated"
    services.sweep(now=_at(takes_effect))
    ours.refresh_from_db()
    amendment.refresh_from_db()
    assert (ours.status, ours.end_date, amendment.applied_at) == ("terminated", old_end, None)
    page = _words(client_for("rep").get(f"/cooperation/{ours.pk}/", HTTP_ACCEPT_LANGUAGE="en"))
    reason = f"Lapsed, not applied: the agreement was terminated on {today.isoformat()}."
    assert reason in page and "not in effect yet" not in page and "amended from" not in page
    shown = client_for("rep").get(f"/api/v1/cooperation/agreements/{ours.pk}/", HTTP_ACCEPT_LANGUAGE="en").json()
    assert shown["end_date"] == old_end.isoformat()
    assert shown["amendments"][0]["state"] == "lapsed" and shown["amendments"][0]["lapsed_at"]
    assert shown["amendments"][0]["lapse_cause"] == "terminated" and shown["amendments"][0]["lapsed_reason"] == reason
    entry = AuditEntry.objects.filter(object_type="cooperation.agreementamendment", object_id=str(amendment.pk),
                                      action="update").get()  # fmt: skip
    assert entry.actor == users["rep"] and entry.changes["lapse_cause"] == [None, "terminated"]


def test_a_termination_refused_leaves_the_amendment_waiting(users, ours):
    amendment = _amend(users, ours, TODAY() + dt.timedelta(days=400), TODAY() + dt.timedelta(days=20))
    with pytest.raises(ConflictError):
        services.terminate(users["rep"], ours, ours.version - 1)  # a stale page
    running_project(users["rep"], ours)
    ours.refresh_from_db()
    with pytest.raises(ValidationError):
        services.terminate(users["rep"], ours, ours.version)  # a project still open
    amendment.refresh_from_db()
    assert amendment.state == "waiting" and Agreement.objects.get(pk=ours.pk).status == "in_force"
    assert not AuditEntry.objects.filter(object_type="cooperation.agreementamendment", action="update").exists()


def test_an_amendment_whose_day_has_come_is_applied_when_the_agreement_is_terminated(users, ours):
    today = TODAY()
    amendment = _amend(users, ours, today + dt.timedelta(days=400), today + dt.timedelta(days=1))
    # its day came, the worker has not run yet: the termination applies it first (it took effect), nothing lapses
    AgreementAmendment.objects.filter(pk=amendment.pk).update(effective_date=today)
    services.terminate(users["rep"], ours, ours.version)
    ours.refresh_from_db()
    amendment.refresh_from_db()
    assert amendment.state == "applied" and ours.end_date == today + dt.timedelta(days=400)
    assert ours.status == "terminated"


def test_the_reminder_follows_the_end_a_waiting_amendment_extends(users, ours):
    today = TODAY()
    Agreement.objects.filter(pk=ours.pk).update(end_date=today + dt.timedelta(days=40))
    ours.refresh_from_db()
    new_end = today + dt.timedelta(days=200)
    _amend(users, ours, new_end, today + dt.timedelta(days=20))
    # 25 days before the current end (within the 30 days' notice): no reminder, the agreement will run on
    assert services.sweep(now=_at(today + dt.timedelta(days=15), 9))[0] == 0
    assert services.sweep(now=_at(today + dt.timedelta(days=20)))[0] == 0  # applied on its day
    ours.refresh_from_db()
    assert ours.end_date == new_end
    assert services.sweep(now=_at(new_end - dt.timedelta(days=20), 9))[0] == 1
    assert len(_reminders()) == 1 and new_end.isoformat() in _reminders()[0]


def test_a_waiting_amendment_shortening_the_term_brings_the_reminder_forward_once(users, ours):
    today = TODAY()
    Agreement.objects.filter(pk=ours.pk).update(end_date=today + dt.timedelta(days=100))
    ours.refresh_from_db()
    short_end = today + dt.timedelta(days=25)
    _amend(users, ours, short_end, today + dt.timedelta(days=10))
    assert services.sweep()[0] == 1  # within the 30 days' notice of the end it will have
    assert short_end.isoformat() in _reminders()[0]
    assert services.sweep(now=_at(today + dt.timedelta(days=10)))[0] == 0  # applied, not reminded twice
    ours.refresh_from_db()
    assert ours.end_date == short_end and ours.renewal_notified_at is not None
    assert len(_reminders()) == 1


def test_a_reminder_sent_for_the_current_end_goes_out_again_for_the_end_a_waiting_amendment_sets(users, ours):
    today = TODAY()
    Agreement.objects.filter(pk=ours.pk).update(end_date=today + dt.timedelta(days=20))
    ours.refresh_from_db()
    assert services.sweep()[0] == 1
    ours.refresh_from_db()
    new_end = today + dt.timedelta(days=200)
    _amend(users, ours, new_end, today + dt.timedelta(days=10))
    assert ours.renewal_notified_at is None
    assert services.sweep(now=_at(today + dt.timedelta(days=10)))[0] == 0
    assert services.sweep(now=_at(new_end - dt.timedelta(days=20), 9))[0] == 1
    assert len(_reminders()) == 2 and new_end.isoformat() in _reminders()[1]


def test_the_api_refuses_a_termination_that_makes_a_waiting_amendment_lapse_unless_confirmed(users, ours, client_for):
    today = TODAY()
    old_end, takes_effect = ours.end_date, today + dt.timedelta(days=20)
    amendment = _amend(users, ours, today + dt.timedelta(days=400), takes_effect)
    api = client_for("rep")
    url = f"/api/v1/cooperation/agreements/{ours.pk}/terminate/"
    # not confirmed (left out, or false): 400 saying which amendment lapses, and listing it; nothing changed
    for body in ({"version": ours.version}, {"version": ours.version, "confirm_lapse": False}):
        r = api.post(url, body, content_type="application/json", HTTP_ACCEPT_LANGUAGE="en")
        assert r.status_code == 400, r.content
        answer = r.json()
        assert answer["confirm_lapse"] == [
            f"Amendment {amendment.number} takes effect on {takes_effect.isoformat()}: terminating the agreement "
            "before then, it lapses and is never applied.",
            "Send confirm_lapse: true to terminate the agreement all the same."]  # fmt: skip
        assert [(a["number"], a["state"], a["effective_date"]) for a in answer["lapsing"]] == [
            (amendment.number, "waiting", takes_effect.isoformat())]
    ours.refresh_from_db()
    amendment.refresh_from_db()
    assert ours.status == "in_force" and amendment.state == "waiting"
    assert not AuditEntry.objects.filter(object_type="cooperation.agreementamendment", action="update").exists()
    # a stale version is still a 409, whatever would lapse
    r = api.post(url, {"version": ours.version - 1}, content_type="application/json")
    assert r.status_code == 409
    # confirmed: terminated, the amendment lapsed, shown so in the answer
    r = api.post(url, {"version": ours.version, "confirm_lapse": True}, content_type="application/json",
                 HTTP_ACCEPT_LANGUAGE="en")  # fmt: skip
    assert r.status_code == 200, r.content
    answer = r.json()
    assert answer["status"] == "terminated" and answer["end_date"] == old_end.isoformat()
    shown = answer["amendments"][0]
    assert (shown["number"], shown["state"], shown["lapse_cause"]) == (amendment.number, "lapsed", "terminated")
    amendment.refresh_from_db()
    assert amendment.state == "lapsed"


def test_the_api_terminates_without_confirmation_when_nothing_would_lapse(users, ours, client_for):
    today = TODAY()
    api = client_for("rep")
    # an amendment whose day has come (the worker has not run yet) took effect: it is applied, nothing lapses
    amendment = _amend(users, ours, today + dt.timedelta(days=400), today + dt.timedelta(days=1))
    AgreementAmendment.objects.filter(pk=amendment.pk).update(effective_date=today)
    r = api.post(f"/api/v1/cooperation/agreements/{ours.pk}/terminate/", {"version": ours.version},
                 content_type="application/json")  # fmt: skip
    assert r.status_code == 200, r.content
    assert r.json()["status"] == "terminated" and r.json()["amendments"][0]["state"] == "applied"


def test_the_api_refusal_in_chinese_names_the_amendment(users, ours, client_for):
    amendment = _amend(users, ours, TODAY() + dt.timedelta(days=400), TODAY() + dt.timedelta(days=20))
    r = client_for("rep").post(f"/api/v1/cooperation/agreements/{ours.pk}/terminate/", {"version": ours.version},
                               content_type="application/json", HTTP_ACCEPT_LANGUAGE="zh-hans")  # fmt: skip
    assert r.status_code == 400 and amendment.number in r.json()["confirm_lapse"][0]
    assert Agreement.objects.get(pk=ours.pk).status == "in_force"


def test_a_reminder_for_the_waiting_amendments_end_is_not_sent_again_whenever_it_was_stamped(users, ours, client_for):
    """The sweep stamps a reminder with the moment its run began; an amendment recorded after that moment (while the
    run went on) made the reminder — naming the end the amendment sets — count as one for the end before, sent again
    once the amendment applied. The reminder is keyed on the end it named."""
    today = TODAY()
    Agreement.objects.filter(pk=ours.pk).update(end_date=today + dt.timedelta(days=100))
    ours.refresh_from_db()
    short_end = today + dt.timedelta(days=25)
    _amend(users, ours, short_end, today + dt.timedelta(days=10))
    assert services.sweep(now=timezone.now() - dt.timedelta(minutes=5))[0] == 1
    shown = client_for("rep").get(f"/api/v1/cooperation/agreements/{ours.pk}/").json()
    assert shown["renewal_notified_for"] == short_end.isoformat()
    assert services.sweep(now=_at(today + dt.timedelta(days=10)))[0] == 0  # applied
    ours.refresh_from_db()
    assert ours.end_date == short_end and ours.renewal_notified_for == short_end
    assert services.sweep(now=_at(today + dt.timedelta(days=11)))[0] == 0
    assert len(_reminders()) == 1


def test_a_reminder_is_sent_once_more_when_an_amendment_applied_at_once_moves_the_end(users, ours):
    today = TODAY()
    Agreement.objects.filter(pk=ours.pk).update(end_date=today + dt.timedelta(days=20))
    ours.refresh_from_db()
    assert services.sweep()[0] == 1
    ours.refresh_from_db()
    assert ours.renewal_notified_for == today + dt.timedelta(days=20)
    new_end = today + dt.timedelta(days=200)
    _amend(users, ours, new_end, today)  # in effect at once
    assert (ours.end_date, ours.renewal_notified_at, ours.renewal_notified_for) == (new_end, None, None)
    assert services.sweep(now=_at(new_end - dt.timedelta(days=20), 9))[0] == 1
    assert services.sweep(now=_at(new_end - dt.timedelta(days=10), 9))[0] == 0
    assert len(_reminders()) == 2 and new_end.isoformat() in _reminders()[1]


def test_the_schema_documents_confirm_lapse_and_the_refusal(client):
    schema = client.get("/api/schema/").content.decode()
    assert "CooperationTerminateRequest" in schema and "confirm_lapse:" in schema
    assert "`lapsing` lists the amendments" in schema
