"""Defects of the key-account evaluation and scorecards (brief kascore):

1. a member's scorecard counted their plan items on every account, including those they did not serve then;
2. a member who served part of the quarter got the whole quarter's score of the account;
3. the account evaluation's response and resolution times counted the time a ticket waited on the customer,
   which the service desk's SLA clocks do not count.
(4., the period that drives the tiers, is in test_kascore_tiers.py.)"""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal

import pytest
from django.urls import reverse
from django.utils import timezone

from pharmacrm.core.roles import Role
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


def _account_with_a_ticket(users, xiehe, with_plan, subject: str):
    """A key account listed long ago, and a ticket of its customer received on the 11th day of the last quarter."""
    from pharmacrm.servicedesk import services as desk
    from pharmacrm.servicedesk.models import Ticket, TicketEvent

    account, _plan = with_plan(xiehe)
    account = _listed_long_ago(account)
    period = services.previous_quarter(timezone.localdate())
    start, _end = services.period_bounds(period)
    received = timezone.make_aware(dt.datetime.combine(start + dt.timedelta(days=10), dt.time(9)))
    ticket = desk.create_ticket(users["agent"], {"subject": subject, "channel": "phone", "category": "drug_info",
                                                 "institution": xiehe})  # fmt: skip
    Ticket.objects.filter(pk=ticket.pk).update(received_at=received)
    TicketEvent.objects.filter(ticket=ticket).update(at=received)
    ticket.refresh_from_db()
    return account, period, received, ticket


def test_the_evaluation_leaves_out_the_time_a_ticket_waited_on_the_customer(users, xiehe, with_plan, client_for):
    from pharmacrm.servicedesk import services as desk
    from pharmacrm.servicedesk.models import SlaClock

    account, period, received, ticket = _account_with_a_ticket(users, xiehe, with_plan, "批号咨询")
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

    account, period, received, ticket = _account_with_a_ticket(users, xiehe, with_plan, "资料补充")
    desk.transition(users["agent"], ticket, "waiting", at=received + dt.timedelta(hours=3))

    review = services.review_account(KeyAccount.objects.get(pk=account.pk), period)

    # still unresolved, waiting on the customer since three hours after receipt: it counts 3 hours, not months
    assert review.unresolved == 1 and review.avg_resolution_hours == Decimal("3.00")


# --- 1. and 2. a scorecard counts the accounts served in the period, for the days served ------------------------


def _quarter_days(period: str) -> tuple[dt.date, dt.date, int]:
    start, end = services.period_bounds(period)
    return start, end, (end - start).days + 1


def test_a_card_counts_no_item_of_an_account_the_member_did_not_serve_in_the_period(users, xiehe, huashan, with_plan):
    from pharmacrm.keyaccounts.choices import ItemStatus
    from pharmacrm.keyaccounts.models import PlanItem, TeamTenure

    period = services.previous_quarter(timezone.localdate())
    start, end, _days = _quarter_days(period)
    served, _plan = with_plan(xiehe)  # the kam leads it all quarter
    other, _plan = with_plan(huashan)
    for account in (served, other):
        _listed_long_ago(account)
    # the kam handed 华山 over before the quarter began; its items, done early, fall due in the quarter
    TeamTenure.objects.filter(account=other, user=users["kam"]).update(end=start - dt.timedelta(days=1))
    mid = start + dt.timedelta(days=20)
    PlanItem.objects.filter(plan__account__in=[served, other]).update(deadline=mid)
    done_early = timezone.make_aware(dt.datetime.combine(start - dt.timedelta(days=5), dt.time(10)))
    PlanItem.objects.filter(plan__account=other).update(status=ItemStatus.DONE, completed_at=done_early, progress=100)

    [card] = [c for c in services.scorecards(period) if c["user"] == users["kam"]]

    # 协和's four items, late (still open); not 华山's four, which someone else answered for that quarter
    assert (card["items_due"], card["items_on_time"]) == (4, 0)
    assert [row["account"].pk for row in card["served"]] == [served.pk]


def test_an_item_due_after_the_member_left_the_account_is_not_on_their_card(users, xiehe, with_plan):
    from pharmacrm.keyaccounts.models import PlanItem, TeamTenure

    period = services.previous_quarter(timezone.localdate())
    start, end, _days = _quarter_days(period)
    account, _plan = with_plan(xiehe)
    _listed_long_ago(account)
    left = start + dt.timedelta(days=30)
    TeamTenure.objects.filter(account=account, user=users["kam"]).update(end=left)
    items = list(PlanItem.objects.filter(plan__account=account).order_by("id"))
    PlanItem.objects.filter(pk__in=[i.pk for i in items[:1]]).update(deadline=left)  # while the kam served
    PlanItem.objects.filter(pk__in=[i.pk for i in items[1:]]).update(deadline=left + dt.timedelta(days=1))

    [card] = [c for c in services.scorecards(period) if c["user"] == users["kam"]]

    assert card["items_due"] == 1


def _reviewed_last_quarter_at_90(xiehe, staffed):
    """A staffed key account listed long ago whose review of the last quarter scored 90."""
    from pharmacrm.keyaccounts.models import AccountReview

    period = services.previous_quarter(timezone.localdate())
    start, end, days = _quarter_days(period)
    account = _listed_long_ago(staffed(xiehe))
    services.review_account(account, period)
    AccountReview.objects.filter(account=account, period=period).update(score=Decimal("90.00"))
    return period, start, end, days, account


def test_a_member_who_served_part_of_the_quarter_gets_that_part_of_the_score(users, xiehe, staffed, client_for):
    from pharmacrm.keyaccounts.models import AccountReview, TeamTenure

    period, start, end, days, account = _reviewed_last_quarter_at_90(xiehe, staffed)
    # the expert joined on the quarter's last day, technical support left on its 46th
    TeamTenure.objects.filter(account=account, user=users["expert"]).update(start=end)
    TeamTenure.objects.filter(account=account, user=users["support"]).update(end=start + dt.timedelta(days=45))
    neutral = services.review_default()
    assert neutral == 60

    cards = {c["user"].username: c for c in services.scorecards(period)}

    assert cards["kam"]["average_score"] == Decimal("90.00")  # the whole quarter: the account's score
    one_day = Decimal(1) / Decimal(days)
    assert cards["expert"]["average_score"] == (90 * one_day + 60 * (1 - one_day)).quantize(Decimal("0.01"))
    assert cards["expert"]["average_score"] < Decimal("60.50")  # not the quarter's 90
    half = Decimal(46) / Decimal(days)
    assert cards["support"]["average_score"] == (90 * half + 60 * (1 - half)).quantize(Decimal("0.01"))
    [row] = cards["expert"]["served"]
    assert (row["days"], row["account_days"], row["score"]) == (1, days, Decimal("90.00"))

    # nor the quarter's blame: a bad quarter costs the newcomer almost nothing
    AccountReview.objects.filter(account=account, period=period).update(score=Decimal("20.00"))
    cards = {c["user"].username: c for c in services.scorecards(period)}
    assert cards["kam"]["average_score"] == Decimal("20.00")
    assert cards["expert"]["average_score"] > Decimal("59.50")

    # the pages say what was counted, and the rule
    page = client_for("manager").get(reverse("keyaccounts:scorecards"), {"period": period}, **EN)
    html = page.content.decode()
    assert f">1/{days}<" in html
    assert ("each account's evaluation score counts for the share of the account's days in the period that the "
            "member served, the neutral value (60) for the rest") in text(page)  # fmt: skip
    mine = client_for("expert").get(reverse("keyaccounts:my"), {"period": period}, **EN)
    assert f"1 / {days}" in text(mine) and "neither credit nor blame" in text(mine)


def test_the_scorecards_api_gives_the_days_served_and_what_was_counted(users, xiehe, staffed, api_client):
    from pharmacrm.keyaccounts.models import TeamTenure

    period, start, end, days, account = _reviewed_last_quarter_at_90(xiehe, staffed)
    TeamTenure.objects.filter(account=account, user=users["expert"]).update(start=end)

    answer = api_client("manager").get("/api/v1/keyaccounts/scorecards/", {"period": period, "user": users["expert"].pk})

    assert answer.status_code == 200
    [card] = answer.json()
    assert card["served"] == [{"account": account.pk, "number": account.number, "days": 1, "account_days": days,
                               "score": "90.00", "credited": card["average_score"]}]  # fmt: skip
    assert Decimal(card["average_score"]) < Decimal("60.50")



def test_members_removed_before_tenures_were_kept_get_them_back_from_the_audit_trail(users, xiehe, staffed,
                                                                                      make_user):
    """0011 started tenures for the members serving then only: one who had left before had no card for the
    quarters they served. 0014 rebuilds their tenure from the team's audit entries."""
    import importlib

    from django.apps import apps
    from django.db.models import Max

    from pharmacrm.core.models import AuditEntry
    from pharmacrm.keyaccounts.models import AccountReview, TeamTenure

    backfill = importlib.import_module("pharmacrm.keyaccounts.migrations.0014_tenure_from_audit")
    period = services.previous_quarter(timezone.localdate())
    start, end, days = _quarter_days(period)
    account = _listed_long_ago(staffed(xiehe))
    services.review_account(account, period)
    AccountReview.objects.filter(account=account, period=period).update(score=Decimal("90.00"))
    # before 0011: a second product expert joined when the quarter began and left on its 46th day; the audit trail
    # kept both (entries are append-only: written here as add_member and remove_member wrote them), no tenure
    former = make_user("expert_former", Role.EXPERT)
    seq = AuditEntry.objects.aggregate(m=Max("seq"))["m"] or 0
    member = {"user": former.pk, "role": "expert"}
    for n, (day, change) in enumerate(((start, [None, member]), (start + dt.timedelta(days=45), [member, None])), 1):
        AuditEntry.objects.create(
            seq=seq + n, at=timezone.make_aware(dt.datetime.combine(day, dt.time(9))), action="update",
            object_type="keyaccounts.keyaccount", object_id=str(account.pk), object_repr=account.number,
            changes={"team": change}, prev_hash="0" * 64, hash=f"{seq + n:064d}",
        )  # fmt: skip
    assert former.username not in {c["user"].username for c in services.scorecards(period)}

    backfill.from_audit(apps, None)
    backfill.from_audit(apps, None)  # run twice (a migration re-applied): one tenure

    [tenure] = TeamTenure.objects.filter(account=account, user=former)
    assert (tenure.start, tenure.end, tenure.role) == (start, start + dt.timedelta(days=45), "expert")
    [card] = [c for c in services.scorecards(period) if c["user"] == former]
    half = Decimal(46) / Decimal(days)
    assert card["average_score"] == (90 * half + 60 * (1 - half)).quantize(Decimal("0.01"))
    # the members serving now keep the one tenure they had
    assert TeamTenure.objects.filter(account=account).count() == 5
