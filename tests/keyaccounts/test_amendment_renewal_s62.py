"""An amendment of a service agreement and the agreement that renews it (core/amendments.py, keyaccounts ServiceTerms):
recorded after a renewal was signed, from a newer plan version, an amendment may not stretch the old agreement's term
into the renewal's — refused under the new end, naming the renewal and its start, on the page and the API; and the
renewal reminder is keyed on the end it named, so that a waiting amendment moving the end brings one reminder for the
new end."""

from __future__ import annotations

import datetime as dt
import html

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from django.utils import timezone

from pharmacrm.keyaccounts import services
from pharmacrm.keyaccounts.models import ServicePlan
from pharmacrm.notify.models import Notification

from .programme_fixtures import *  # noqa: F403
from .programme_fixtures import approve_plan, tiny_pdf
from .test_agreement_term_change import _amend_post

pytestmark = pytest.mark.django_db


@pytest.fixture
def signed(users, xiehe, with_plan):
    """协和's approved plan v1, valid from 10 days ago to 300 days ahead, and its agreement of 100 days from today,
    signed today."""
    account, plan = with_plan(xiehe)
    today = timezone.localdate()
    ServicePlan.objects.filter(pk=plan.pk).update(valid_from=today - dt.timedelta(days=10),
                                                   valid_to=today + dt.timedelta(days=300))  # fmt: skip
    plan.refresh_from_db()
    agreement = services.generate_agreement(users["kam"], account, start_date=today,
                                            end_date=today + dt.timedelta(days=99))  # fmt: skip
    _sign(users, agreement)
    agreement.refresh_from_db()
    return account, plan, agreement


def _sign(users, agreement):
    upload = SimpleUploadedFile("签署件.pdf", tiny_pdf(), "application/pdf")
    return services.record_signed(users["kam"], agreement, signed_date=timezone.localdate(), upload=upload,
                                  version=agreement.version)  # fmt: skip


def _renewal_from_new_version(users, account, start, end):
    """Plan v2 approved (replacing v1) and an agreement generated from it for start–end, signed ahead of its start."""
    plan2 = services.start_plan(users["kam"], account, valid_from=timezone.localdate(),
                                valid_to=timezone.localdate() + dt.timedelta(days=400))  # fmt: skip
    plan2 = approve_plan(users, plan2)
    assert plan2.version_number == 2 and services.current_plan(account) == plan2
    renewal = services.generate_agreement(users["kam"], account, start_date=start, end_date=end)
    _sign(users, renewal)
    renewal.refresh_from_db()
    assert renewal.status == "signed"
    return renewal


def _at(day: dt.date, hour: int = 1) -> dt.datetime:
    return timezone.make_aware(dt.datetime.combine(day, dt.time(hour)))


# --- an amendment may not stretch the term into a signed renewal's ------------------------------------------------


def test_an_amendment_reaching_into_a_signed_renewal_is_refused_on_the_page_and_the_api(
    users, signed, client_for, api_client
):
    account, plan, agreement = signed  # v1: today – today+99
    today = timezone.localdate()
    renewal = _renewal_from_new_version(users, account, today + dt.timedelta(days=100), today + dt.timedelta(days=299))
    agreement.refresh_from_db()
    assert agreement.status == "signed"  # in force until the renewal's start day
    stretched = today + dt.timedelta(days=150)
    expected = (f"The new end {stretched.isoformat()} reaches into the term of {renewal.number}, the signed renewal "
                f"of this agreement from {renewal.start_date.isoformat()}: an amendment may not stretch the term into "
                f"its renewal's. End it on {(renewal.start_date - dt.timedelta(days=1)).isoformat()} at the latest, "
                "or amend the renewal instead.")  # fmt: skip
    # the page: refused under the new end, nothing written
    r = client_for("kam").post(reverse("keyaccounts:agreement-amend", args=[agreement.pk]),
                               _amend_post(agreement, agreement.start_date, stretched), HTTP_ACCEPT_LANGUAGE="en")  # fmt: skip
    assert r.status_code == 400
    assert expected in html.unescape(r.content.decode())
    # the API: 400 under end_date, whether it takes effect today or later
    for effective in (today, today + dt.timedelta(days=50)):
        r = api_client("kam").post(f"/api/v1/keyaccounts/agreements/{agreement.pk}/amendments/", {
            "start_date": agreement.start_date.isoformat(), "end_date": stretched.isoformat(), "reason": "延期",
            "effective_date": effective.isoformat(), "version": agreement.version}, format="json")  # fmt: skip
        assert r.status_code == 400, r.content
        assert r.json()["end_date"] == [expected]
    agreement.refresh_from_db()
    assert agreement.end_date == today + dt.timedelta(days=99) and not agreement.amendments.exists()
    # in Chinese too, naming the renewal
    r = api_client("kam").post(f"/api/v1/keyaccounts/agreements/{agreement.pk}/amendments/", {
        "start_date": agreement.start_date.isoformat(), "end_date": stretched.isoformat(), "reason": "延期",
        "effective_date": today.isoformat(), "version": agreement.version}, format="json",
        HTTP_ACCEPT_LANGUAGE="zh-hans")  # fmt: skip
    assert r.status_code == 400 and renewal.number in r.json()["end_date"][0]


def test_an_amendment_keeping_clear_of_the_renewal_is_recorded(users, signed, api_client):
    account, plan, agreement = signed
    today = timezone.localdate()
    renewal = _renewal_from_new_version(users, account, today + dt.timedelta(days=100), today + dt.timedelta(days=299))
    # up to the day before the renewal's start: no overlap
    last = renewal.start_date - dt.timedelta(days=1)
    assert last == agreement.end_date  # it ends there already: the start moves instead, the end stays
    shortened = today + dt.timedelta(days=80)
    r = api_client("kam").post(f"/api/v1/keyaccounts/agreements/{agreement.pk}/amendments/", {
        "start_date": agreement.start_date.isoformat(), "end_date": shortened.isoformat(), "reason": "提前结束",
        "effective_date": today.isoformat(), "version": agreement.version}, format="json")  # fmt: skip
    assert r.status_code == 201, r.content
    agreement.refresh_from_db()
    assert agreement.end_date == shortened
    # and back to the day before the renewal's start: allowed
    r = api_client("kam").post(f"/api/v1/keyaccounts/agreements/{agreement.pk}/amendments/", {
        "start_date": agreement.start_date.isoformat(), "end_date": last.isoformat(), "reason": "恢复原期限",
        "effective_date": today.isoformat(), "version": agreement.version}, format="json")  # fmt: skip
    assert r.status_code == 201, r.content
    # one day more is refused
    agreement.refresh_from_db()
    r = api_client("kam").post(f"/api/v1/keyaccounts/agreements/{agreement.pk}/amendments/", {
        "start_date": agreement.start_date.isoformat(), "end_date": renewal.start_date.isoformat(), "reason": "延期",
        "effective_date": today.isoformat(), "version": agreement.version}, format="json")  # fmt: skip
    assert r.status_code == 400 and renewal.number in r.json()["end_date"][0]
    assert list(r.json()) == ["end_date"]


# --- the renewal reminder is keyed on the end it named -----------------------------------------------------------


def _amend(users, agreement, end, effective, start=None):
    return services.amend_term(users["kam"], agreement, {
        "start_date": start or agreement.start_date, "end_date": end, "reason": "客户项目调整，双方协商变更服务期",
        "effective_date": effective}, version=agreement.version)  # fmt: skip


def _reminders() -> list[str]:
    reminders = Notification.objects.filter(kind="keyaccounts.renewal", recipient__username="manager")
    return [str(n.title) for n in reminders.order_by("pk")]


def test_a_reminder_sent_for_the_current_end_goes_out_once_more_for_the_end_a_waiting_amendment_sets(users, signed):
    account, plan, agreement = signed  # today – today+99, reminded 60 days before the end
    today = timezone.localdate()
    assert services.sweep_agreements(now=_at(today + dt.timedelta(days=39), 10)) == 1
    agreement.refresh_from_db()
    assert agreement.renewal_notified_for == today + dt.timedelta(days=99)  # the end it named
    new_end = today + dt.timedelta(days=180)
    _amend(users, agreement, new_end, today + dt.timedelta(days=60))
    agreement.refresh_from_db()
    assert (agreement.renewal_notified_at, agreement.renewal_notified_for) == (None, None)
    # applied on its day: the clock counts from the new end; one reminder ahead of it, then none
    assert services.sweep_agreements(now=_at(today + dt.timedelta(days=60))) == 0
    assert services.sweep_agreements(now=_at(new_end - dt.timedelta(days=60), 10)) == 1
    assert services.sweep_agreements(now=_at(new_end - dt.timedelta(days=10), 10)) == 0
    assert len(_reminders()) == 2 and new_end.isoformat() in _reminders()[1]
    agreement.refresh_from_db()
    assert agreement.renewal_notified_for == new_end


def test_a_reminder_for_the_waiting_amendments_end_is_not_sent_again_when_it_applies_whenever_it_was_stamped(
    users, signed
):
    """The worker stamps a reminder with the moment its run began: an amendment recorded while the run went through
    the other agreements was recorded after that moment, and the reminder — naming the end the amendment sets — was
    taken for one sent before it, for the end before, and sent a second time when the amendment applied."""
    account, plan, agreement = signed
    today = timezone.localdate()
    short_end = today + dt.timedelta(days=55)  # 60 days before it is past already: reminded at once
    _amend(users, agreement, short_end, today + dt.timedelta(days=10), start=today - dt.timedelta(days=10))
    run_began = timezone.now() - dt.timedelta(minutes=5)  # before the amendment was recorded
    assert services.sweep_agreements(now=run_began) == 1
    assert short_end.isoformat() in _reminders()[0]
    agreement.refresh_from_db()
    assert agreement.renewal_notified_for == short_end
    assert services.sweep_agreements(now=_at(today + dt.timedelta(days=10))) == 0  # applied
    agreement.refresh_from_db()
    assert agreement.end_date == short_end and agreement.renewal_notified_at is not None
    assert services.sweep_agreements(now=_at(short_end - dt.timedelta(days=5), 10)) == 0
    assert len(_reminders()) == 1


def test_an_amendment_applied_at_once_that_keeps_the_end_keeps_the_reminder(users, signed):
    account, plan, agreement = signed
    today = timezone.localdate()
    assert services.sweep_agreements(now=_at(today + dt.timedelta(days=39), 10)) == 1
    agreement.refresh_from_db()
    _amend(users, agreement, agreement.end_date, today, start=today + dt.timedelta(days=1))  # the start only
    agreement.refresh_from_db()
    assert agreement.renewal_notified_at is not None and agreement.renewal_notified_for == agreement.end_date
    assert services.sweep_agreements(now=_at(agreement.end_date - dt.timedelta(days=5), 10)) == 0
    assert len(_reminders()) == 1
