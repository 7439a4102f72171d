"""Defects of the key-account evaluation and scorecards (brief kascore):

1. a member's scorecard counted their plan items on every account, including those they did not serve then;
2. a member who served part of the quarter got the whole quarter's score of the account;
3. the account evaluation's response and resolution times counted the time a ticket waited on the customer,
   which the service desk's SLA clocks do not count;
4. on the day after a half-year ended, an update after an import scored the new half-year and took the tiers,
   and the ended half-year's evaluation only filled history (which period drove the tiers depended on the order
   of the runs)."""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal

import pytest
from django.urls import reverse
from django.utils import timezone

from pharmacrm.keyaccounts import services
from pharmacrm.keyaccounts.models import KeyAccount

from .eval_fixtures import *  # noqa: F403  (fixtures)
from .programme_fixtures import *  # noqa: F403  (fixtures)

pytestmark = pytest.mark.django_db
EN = {"HTTP_ACCEPT_LANGUAGE": "en"}


def text(response) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", response.content.decode()))


def _listed_long_ago(account) -> KeyAccount:
    KeyAccount.objects.filter(pk=account.pk).update(listed_at=timezone.now() - dt.timedelta(days=400))
    return KeyAccount.objects.get(pk=account.pk)


# --- 3. waiting on the customer is no wait for an answer ----------------------------------------------------------


def test_the_evaluation_leaves_out_the_time_a_ticket_waited_on_the_customer(users, xiehe, with_plan, client_for):
    from pharmacrm.servicedesk import services as desk
    from pharmacrm.servicedesk.models import SlaClock, Ticket, TicketEvent

    account, _plan = with_plan(xiehe)
    account = _listed_long_ago(account)
    period = services.previous_quarter(timezone.localdate())
    start, _end = services.period_bounds(period)
    received = timezone.make_aware(dt.datetime.combine(start + dt.timedelta(days=10), dt.time(9)))
    ticket = desk.create_ticket(users["agent"], {"subject": "批号咨询", "channel": "phone", "category": "drug_info",
                                                 "institution": xiehe})  # fmt: skip
    Ticket.objects.filter(pk=ticket.pk).update(received_at=received)
    TicketEvent.objects.filter(ticket=ticket).update(at=received)
    ticket.refresh_from_db()
    # an hour to pick it up, an hour later the agent asks for the batch number; the customer sends it three days
    # later and the ticket is resolved two hours after that
    steps = (("in_progress", dt.timedelta(hours=1), {}), ("waiting", dt.timedelta(hours=2), {}),
             ("in_progress", dt.timedelta(days=3, hours=2), {}),
             ("resolved", dt.timedelta(days=3, hours=4), {"resolution_summary": "已答复", "root_cause": "other"}))  # fmt: skip
    for status, after, extra in steps:
        ticket = desk.transition(users["agent"], ticket, status, at=received + after, **extra)
    # the desk's own clock: three days paused
    clock = SlaClock.objects.get(ticket=ticket, kind="resolution")
    assert clock.fulfilled_at == received + dt.timedelta(days=3, hours=4)

    review = services.review_account(KeyAccount.objects.get(pk=account.pk), period)

    # 4 hours, not 76: the three days the customer had the ball were nobody's wait
    assert review.avg_resolution_hours == Decimal("4.00")
    assert review.avg_response_hours == Decimal("4.00")  # answered by the resolution, paused alike
    page = client_for("manager").get(reverse("keyaccounts:account", args=[account.pk]), **EN)
    assert ("as the service desk's SLA clocks count them: the time a ticket waited on the customer does not "
            "count") in text(page)  # fmt: skip


def test_a_ticket_waiting_on_the_customer_now_counts_only_its_wait_before(users, xiehe, with_plan):
    from pharmacrm.servicedesk import services as desk
    from pharmacrm.servicedesk.models import Ticket, TicketEvent

    account, _plan = with_plan(xiehe)
    account = _listed_long_ago(account)
    period = services.previous_quarter(timezone.localdate())
    start, _end = services.period_bounds(period)
    received = timezone.make_aware(dt.datetime.combine(start + dt.timedelta(days=10), dt.time(9)))
    ticket = desk.create_ticket(users["agent"], {"subject": "资料补充", "channel": "phone", "category": "drug_info",
                                                 "institution": xiehe})  # fmt: skip
    Ticket.objects.filter(pk=ticket.pk).update(received_at=received)
    TicketEvent.objects.filter(ticket=ticket).update(at=received)
    ticket.refresh_from_db()
    desk.transition(users["agent"], ticket, "waiting", at=received + dt.timedelta(hours=3))

    review = services.review_account(KeyAccount.objects.get(pk=account.pk), period)

    # still unresolved, waiting on the customer since three hours after receipt: it counts 3 hours, not months
    assert review.unresolved == 1 and review.avg_resolution_hours == Decimal("3.00")
