"""An amendment of a service agreement's term signed ahead of its effective date (core/amendments.py) while it waits
for its day: it lapses — never applied, shown and audited with the reason — when the agreement is renewed by a signed
agreement whose term overlaps the one it sets, or ends on de-listing, before that day; and the renewal reminder follows
the end the agreement will have once it applies. The worker's sweep is driven with given days."""

from __future__ import annotations

import datetime as dt

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from django.utils import timezone

from pharmacrm.core.models import AuditEntry
from pharmacrm.keyaccounts import services
from pharmacrm.keyaccounts.models import Agreement, ServicePlan
from pharmacrm.notify.models import Notification

from .programme_fixtures import *  # noqa: F403
from .programme_fixtures import sign_code, tiny_pdf
from .test_agreement_term_change import _words

pytestmark = pytest.mark.django_db


@pytest.fixture
def signed(users, xiehe, with_plan):
    """协和's approved plan, valid from 10 days ago to 200 days ahead, and its agreement of 100 days from today, signed
    today (as in test_agreement_term_change)."""
    account, plan = with_plan(xiehe)
    today = timezone.localdate()
    ServicePlan.objects.filter(pk=plan.pk).update(valid_from=today - dt.timedelta(days=10),
                                                   valid_to=today + dt.timedelta(days=200))  # fmt: skip
    plan.refresh_from_db()
    agreement = services.generate_agreement(users["kam"], account, start_date=today,
                                            end_date=today + dt.timedelta(days=99))  # fmt: skip
    _sign(users, agreement)
    agreement.refresh_from_db()
    return account, plan, agreement


def _at(day: dt.date, hour: int = 1) -> dt.datetime:
    return timezone.make_aware(dt.datetime.combine(day, dt.time(hour)))


def _amend(users, agreement, end, effective, start=None):
    return services.amend_term(users["kam"], agreement, {
        "start_date": start or agreement.start_date, "end_date": end, "reason": "客户项目调整，双方协商变更服务期",
        "effective_date": effective}, version=agreement.version)  # fmt: skip


def _sign(users, agreement):
    upload = SimpleUploadedFile("续签件.pdf", tiny_pdf(), "application/pdf")
    return services.record_signed(users["kam"], agreement, signed_date=timezone.localdate(), upload=upload,
                                  version=agreement.version)  # fmt: skip


def _reminders() -> list[str]:
    """The renewal reminders a manager was sent (each goes to the project manager and the managers)."""
    reminders = Notification.objects.filter(kind="keyaccounts.renewal", recipient__username="manager")
    return [str(n.title) for n in reminders.order_by("pk")]


def test_a_renewal_overlapping_the_new_term_makes_the_waiting_amendment_lapse_saying_so_beforehand(
    users, signed, client_for, api_client
):
    account, plan, agreement = signed  # today – today+99
    today = timezone.localdate()
    amendment = _amend(users, agreement, today + dt.timedelta(days=150), today + dt.timedelta(days=60))
    agreement.refresh_from_db()
    renewal = services.generate_agreement(users["kam"], account, start_date=today + dt.timedelta(days=100),
                                          end_date=today + dt.timedelta(days=199))  # fmt: skip
    # the signing form of the renewal says beforehand what its signing does to the amendment
    page = _words(client_for("kam").get(reverse("keyaccounts:account", args=[account.pk]), HTTP_ACCEPT_LANGUAGE="en"))
    assert (f"Amendment {amendment.number} takes effect on {(today + dt.timedelta(days=60)).isoformat()}, in the term "
            f"of this renewal: recording the signing of {renewal.number}, it lapses and is never applied.") in page  # fmt: skip
    _sign(users, renewal)
    amendment.refresh_from_db()
    assert amendment.lapsed_at is not None and amendment.applied_at is None and amendment.state == "lapsed"
    entry = AuditEntry.objects.filter(object_type="keyaccounts.agreementamendment", object_id=str(amendment.pk),
                                      action="update").get()  # fmt: skip
    assert entry.actor == users["kam"] and entry.changes["lapse_cause"] == [None, "renewed"]
    assert entry.changes["lapsed_by"] == [None, renewal.number]
    # on its day the worker leaves it: the agreement keeps its term until the renewal takes over
    services.sweep_agreements(now=_at(today + dt.timedelta(days=60)))
    agreement.refresh_from_db()
    amendment.refresh_from_db()
    assert agreement.end_date == today + dt.timedelta(days=99) and amendment.applied_at is None
    page = _words(client_for("kam").get(reverse("keyaccounts:account", args=[account.pk]), HTTP_ACCEPT_LANGUAGE="en"))
    assert f"Lapsed, not applied: the agreement was renewed by {renewal.number}." in page
    assert "not in effect yet" not in page and "amended from" not in page
    shown = api_client("kam").get(f"/api/v1/keyaccounts/agreements/{agreement.pk}/").json()["amendments"][0]
    assert shown["state"] == "lapsed" and shown["lapse_cause"] == "renewed" and shown["lapsed_by"] == renewal.number
    assert shown["lapsed_reason"] == f"Lapsed, not applied: the agreement was renewed by {renewal.number}."
    # the renewal begins: the agreement it renews goes out of force as renewed, nothing left waiting
    services.sweep_agreements(now=_at(today + dt.timedelta(days=100)))
    agreement.refresh_from_db()
    assert agreement.status == "renewed"


def test_an_amendment_that_keeps_clear_of_the_renewal_still_applies_on_its_day(users, signed):
    account, plan, agreement = signed
    today = timezone.localdate()
    amendment = _amend(users, agreement, today + dt.timedelta(days=80), today + dt.timedelta(days=30))  # shortened
    renewal = services.generate_agreement(users["kam"], account, start_date=today + dt.timedelta(days=100),
                                          end_date=today + dt.timedelta(days=199))  # fmt: skip
    _sign(users, renewal)
    amendment.refresh_from_db()
    assert amendment.state == "waiting"
    services.sweep_agreements(now=_at(today + dt.timedelta(days=30)))
    agreement.refresh_from_db()
    amendment.refresh_from_db()
    assert amendment.state == "applied" and agreement.end_date == today + dt.timedelta(days=80)


def test_the_waiting_amendment_lapses_when_the_account_is_delisted(users, signed, client_for, make_proposal, manager2):
    account, plan, agreement = signed
    today = timezone.localdate()
    amendment = _amend(users, agreement, today + dt.timedelta(days=150), today + dt.timedelta(days=60))
    proposal = make_proposal(account.institution, kind="delist")
    # the decision form says beforehand what approving it does to the amendment
    page = _words(client_for("manager").get(reverse("keyaccounts:proposal", args=[proposal.pk]),
                                             HTTP_ACCEPT_LANGUAGE="en"))  # fmt: skip
    assert (f"Amendment {amendment.number} takes effect on {(today + dt.timedelta(days=60)).isoformat()}: approving "
            "the de-listing ends its agreement before then, and it lapses, never applied.") in page  # fmt: skip
    services.decide(manager2, proposal, approve=True, comment="合作结束", otp_code=sign_code(manager2))
    agreement.refresh_from_db()
    amendment.refresh_from_db()
    assert agreement.status == "ended" and amendment.state == "lapsed" and amendment.lapse_cause == "ended"
    services.sweep_agreements(now=_at(today + dt.timedelta(days=60)))
    agreement.refresh_from_db()
    amendment.refresh_from_db()
    assert agreement.end_date == today + dt.timedelta(days=99) and amendment.applied_at is None
    page = _words(client_for("manager").get(reverse("keyaccounts:account", args=[account.pk]),
                                            HTTP_ACCEPT_LANGUAGE="en"))  # fmt: skip
    assert (f"Lapsed, not applied: the agreement ended on {today.isoformat()} when the customer was de-listed."
            in page)  # fmt: skip
    assert AuditEntry.objects.filter(object_type="keyaccounts.agreementamendment", object_id=str(amendment.pk),
                                     changes__lapse_cause__1="ended", actor=manager2).exists()  # fmt: skip


def test_the_reminder_follows_the_end_a_waiting_amendment_extends(users, signed):
    account, plan, agreement = signed  # today – today+99, reminded 60 days before the end
    today = timezone.localdate()
    new_end = today + dt.timedelta(days=180)
    _amend(users, agreement, new_end, today + dt.timedelta(days=100))  # from the day after the current end
    # 60 days before the current end: no reminder, the agreement will run on
    assert services.sweep_agreements(now=_at(today + dt.timedelta(days=39), 10)) == 0
    assert services.sweep_agreements(now=_at(today + dt.timedelta(days=100))) == 0  # applied on its day
    agreement.refresh_from_db()
    assert agreement.end_date == new_end and agreement.status == "signed"
    assert services.sweep_agreements(now=_at(new_end - dt.timedelta(days=60), 10)) == 1
    assert len(_reminders()) == 1 and new_end.isoformat() in _reminders()[0]


def test_a_waiting_amendment_shortening_the_term_brings_the_reminder_forward_once(users, signed):
    account, plan, agreement = signed
    today = timezone.localdate()
    # from ten days back to 55 days ahead: 60 days before that end is past already
    short_end = today + dt.timedelta(days=55)
    _amend(users, agreement, short_end, today + dt.timedelta(days=10), start=today - dt.timedelta(days=10))
    agreement.refresh_from_db()
    assert agreement.next_check_at <= timezone.now() + dt.timedelta(minutes=1)
    assert services.sweep_agreements(now=timezone.now() + dt.timedelta(minutes=1)) == 1
    assert short_end.isoformat() in _reminders()[0]
    # applied on its day without a second reminder for the same end; nothing more before it expires
    assert services.sweep_agreements(now=_at(today + dt.timedelta(days=10))) == 0
    agreement.refresh_from_db()
    assert agreement.end_date == short_end and agreement.renewal_notified_at is not None
    assert services.sweep_agreements(now=_at(short_end - dt.timedelta(days=5), 10)) == 0
    assert len(_reminders()) == 1
    services.sweep_agreements(now=_at(short_end + dt.timedelta(days=1)))
    agreement.refresh_from_db()
    assert agreement.status == "expired"


def test_a_reminder_sent_for_the_current_end_goes_out_again_for_the_end_a_waiting_amendment_sets(users, signed):
    account, plan, agreement = signed
    today = timezone.localdate()
    assert services.sweep_agreements(now=_at(today + dt.timedelta(days=39), 10)) == 1  # for today+99
    agreement.refresh_from_db()
    new_end = today + dt.timedelta(days=180)
    _amend(users, agreement, new_end, today + dt.timedelta(days=60))
    agreement.refresh_from_db()
    assert agreement.renewal_notified_at is None
    entry = AuditEntry.objects.filter(object_type="keyaccounts.agreement", object_id=str(agreement.pk),
                                      extra__amendment__isnull=False).latest("seq")  # fmt: skip
    assert entry.changes["renewal_notified_at"][1] is None
    assert services.sweep_agreements(now=_at(today + dt.timedelta(days=60))) == 0
    assert services.sweep_agreements(now=_at(new_end - dt.timedelta(days=60), 10)) == 1
    assert len(_reminders()) == 2 and new_end.isoformat() in _reminders()[1]
    assert Agreement.objects.get(pk=agreement.pk).end_date == new_end
