"""Session 17 (issue 5): improvement actions of merged customers; scorecards count the team that served in the
period, not today's."""

from __future__ import annotations

import datetime as dt

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone, translation

from pharmacrm.core.roles import Role
from pharmacrm.customers.models import Institution
from pharmacrm.keyaccounts import evaluation, services
from pharmacrm.keyaccounts.choices import ModelKind, TeamRole
from pharmacrm.keyaccounts.models import KeyAccount, Score, TeamMember, TeamTenure
from pharmacrm.servicedesk.models import ImprovementAction

from .eval_fixtures import *  # noqa: F403  (fixtures)
from .eval_fixtures import H1_2026
from .programme_fixtures import *  # noqa: F403  (fixtures)


def test_a_weak_customer_merged_away_gets_no_action(purchases, users):
    xiehe, huashan = purchases["xiehe"], purchases["huashan"]
    evaluation.run(ModelKind.EVALUATION, as_of=H1_2026, apply=False)  # 协和 scored D, nothing applied yet
    assert Score.objects.get(institution=xiehe, period="2026H1").klass == "D"
    Institution.objects.filter(pk=xiehe.pk).update(merged_into=huashan)

    run = evaluation.run(ModelKind.EVALUATION, as_of=H1_2026, ids=[huashan.pk])  # 协和's D score stays

    assert run.actions == 0 and not ImprovementAction.objects.exists()


def test_a_weak_customer_gets_its_action_with_its_name_and_owner(purchases, users):
    xiehe = purchases["xiehe"]
    Institution.objects.filter(pk=xiehe.pk).update(owner=users["kam"])

    run = evaluation.run(ModelKind.EVALUATION, as_of=H1_2026)

    [action] = ImprovementAction.objects.filter(institution=xiehe)
    assert run.actions == 1 and action.owner == users["kam"] and xiehe.name in action.title


# --- scorecards count the team that served in the period ---------------------------------------------------


def test_scorecards_of_a_past_quarter_count_the_team_that_served_then(users, xiehe, staffed, make_user):
    account = staffed(xiehe)  # serving for two years
    # listed as long (a scorecard counts the days the customer was a key account)
    KeyAccount.objects.filter(pk=account.pk).update(listed_at=timezone.now() - dt.timedelta(days=730))
    period = services.previous_quarter(timezone.localdate())
    start, end = services.period_bounds(period)
    # the expert leaves today: they served the whole past quarter and keep its card
    services.remove_member(users["manager"], TeamMember.objects.get(account=account, user=users["expert"]))
    # a second product expert joins today: the past quarter was not theirs
    newcomer = make_user("expert2", Role.EXPERT)
    services.add_member(users["manager"], account, newcomer, TeamRole.PRODUCT_EXPERT)
    # after-sales left before the quarter began
    TeamTenure.objects.filter(account=account, user=users["aftersales"]).update(end=start - dt.timedelta(days=1))
    TeamMember.objects.filter(account=account, user=users["aftersales"]).delete()

    cards = {c["user"].username: c for c in services.scorecards(period)}

    assert set(cards) == {"kam", "expert", "support"}
    assert [a.pk for a in cards["expert"]["accounts"]] == [account.pk]
    # the quarter running now: the newcomer is in, the expert still counts for the days they served
    today = timezone.localdate()
    current = {c["user"].username for c in services.scorecards(f"{today.year}Q{(today.month - 1) // 3 + 1}")}
    assert current == {"kam", "expert", "expert2", "support"}


# --- the key-account evaluation counts tickets still waiting ------------------------------------------------


def test_a_ticket_never_answered_counts_with_its_wait_so_far_and_is_named(users, xiehe, with_plan, client_for):
    from django.urls import reverse

    from pharmacrm.keyaccounts.models import KeyAccount
    from pharmacrm.servicedesk import services as desk
    from pharmacrm.servicedesk.choices import ClockKind
    from pharmacrm.servicedesk.models import SlaClock, Ticket

    account, _plan = with_plan(xiehe)
    KeyAccount.objects.filter(pk=account.pk).update(listed_at=timezone.now() - dt.timedelta(days=400))
    period = services.previous_quarter(timezone.localdate())
    start, _end = services.period_bounds(period)
    received = timezone.make_aware(dt.datetime.combine(start + dt.timedelta(days=10), dt.time(9)))
    answered, forgotten = (
        desk.create_ticket(users["agent"], {"subject": subject, "channel": "phone", "category": "drug_info",
                                            "institution": xiehe})  # fmt: skip
        for subject in ("到货咨询", "说明书咨询")
    )
    Ticket.objects.filter(pk__in=[answered.pk, forgotten.pk]).update(received_at=received)
    SlaClock.objects.filter(ticket__in=[answered, forgotten]).update(started_at=received, fulfilled_at=None)
    SlaClock.objects.filter(ticket=answered, kind=ClockKind.FIRST_RESPONSE).update(
        fulfilled_at=received + dt.timedelta(hours=2)
    )

    review = services.review_account(KeyAccount.objects.get(pk=account.pk), period)

    waited = (timezone.now() - received).total_seconds() / 3600  # the forgotten one is still waiting
    assert review.tickets == 2 and (review.unanswered, review.unresolved) == (1, 2)
    assert abs(float(review.avg_response_hours) - (2 + waited) / 2) < 0.1  # not 2 h: the forgotten one counts
    page = client_for("manager").get(reverse("keyaccounts:account", args=[account.pk]), HTTP_ACCEPT_LANGUAGE="en")
    assert "1 ticket still unanswered, counted with its wait so far" in page.content.decode()


def test_a_reopened_ticket_counts_its_working_time_not_the_days_it_stood_resolved(users, xiehe, with_plan):
    from pharmacrm.keyaccounts.models import KeyAccount
    from pharmacrm.servicedesk import services as desk
    from pharmacrm.servicedesk.models import Ticket, TicketEvent

    account, _plan = with_plan(xiehe)
    KeyAccount.objects.filter(pk=account.pk).update(listed_at=timezone.now() - dt.timedelta(days=400))
    period = services.previous_quarter(timezone.localdate())
    start, _end = services.period_bounds(period)
    received = timezone.make_aware(dt.datetime.combine(start + dt.timedelta(days=10), dt.time(9)))
    ticket = desk.create_ticket(users["agent"], {"subject": "到货咨询", "channel": "phone", "category": "drug_info",
                                                 "institution": xiehe})  # fmt: skip
    Ticket.objects.filter(pk=ticket.pk).update(received_at=received)
    TicketEvent.objects.filter(ticket=ticket).update(at=received)
    ticket.refresh_from_db()
    resolve = {"resolution_summary": "已补发说明书", "root_cause": "other"}
    # resolved after 2 hours; the customer comes back ten days later, and it takes 2 more hours
    for status, at, extra in (("resolved", dt.timedelta(hours=2), resolve), ("in_progress", dt.timedelta(days=10), {}),
                              ("resolved", dt.timedelta(days=10, hours=2), resolve)):  # fmt: skip
        ticket = desk.transition(users["agent"], ticket, status, at=received + at, **extra)

    review = services.review_account(KeyAccount.objects.get(pk=account.pk), period)

    assert review.avg_resolution_hours == 4  # not 242: the ten days it stood resolved were nobody's wait
    assert review.components[2] == {"name": "resolution", "value": "100.00", "weight": "0.2000",
                                    "contribution": "20.00"}  # fmt: skip


# --- progress on the plan in force ---------------------------------------------------------------------------


def _progress(client, account, item, **data):
    from django.urls import reverse

    post = {f"progress{item.pk}-{k}": v for k, v in {"version": item.version, **data}.items()}
    return client.post(reverse("keyaccounts:item-progress", args=[account.pk, item.pk]), post, HTTP_ACCEPT_LANGUAGE="en")


def test_an_item_owner_cannot_cancel_an_item_of_the_approved_plan_alone(users, xiehe, with_plan, client_for):
    from pharmacrm.keyaccounts.choices import ItemStatus
    from pharmacrm.keyaccounts.models import PlanItem

    account, plan = with_plan(xiehe)
    item = plan.items.order_by("id").first()
    PlanItem.objects.filter(pk=item.pk).update(owner=users["expert"])
    item.refresh_from_db()

    refused = _progress(client_for("expert"), account, item, status=ItemStatus.CANCELLED, progress=10)

    assert refused.status_code == 400 and PlanItem.objects.get(pk=item.pk).status != ItemStatus.CANCELLED
    with translation.override("en"), pytest.raises(ValidationError) as said:  # the API's path
        services.update_progress(users["expert"], item, status=ItemStatus.CANCELLED, version=item.version)
    assert said.value.message_dict["status"] == ["Only the project manager or a manager may cancel an item of the plan in force."]
    # the owner is not offered it; the project manager may cancel
    page = client_for("expert").get(f"/keyaccounts/{account.pk}/", HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert f'name="progress{item.pk}-status"' in page and 'value="cancelled"' not in page
    done = _progress(client_for("kam"), account, item, status=ItemStatus.CANCELLED, progress=10)
    assert done.status_code == 302 and PlanItem.objects.get(pk=item.pk).status == ItemStatus.CANCELLED


def test_progress_sent_on_a_replaced_version_is_refused_with_the_note_shown(users, xiehe, with_plan, client_for):
    from pharmacrm.keyaccounts.choices import ItemStatus

    from .programme_fixtures import approve_plan

    account, first = with_plan(xiehe)
    item = first.items.order_by("id").first()
    approve_plan(users, services.start_plan(users["kam"], account))  # v2 replaces v1 meanwhile

    r = _progress(client_for("kam"), account, item, status=ItemStatus.IN_PROGRESS, progress=40, note="已与药剂科确认到货时间")

    assert r.status_code == 400
    body = r.content.decode()
    assert "A new version of this service plan came into force meanwhile" in body and "已与药剂科确认到货时间" in body


def test_who_proposed_and_sent_a_proposal_is_not_asked_to_decide_it(users, xiehe, make_proposal, manager2):
    from pharmacrm.notify.models import Notification

    make_proposal(xiehe, by=users["manager"])  # the manager proposes and sends it: manager2 must decide

    asked = set(Notification.objects.filter(kind="keyaccounts.decide").values_list("recipient__username", flat=True))
    assert manager2.username in asked and "manager" not in asked


def test_delisting_ends_the_teams_tenure(users, xiehe, staffed, make_proposal, manager2):
    from .test_lifecycle_fixes import delist

    account = staffed(xiehe)
    delist(make_proposal, manager2, xiehe)

    assert set(TeamTenure.objects.filter(account=account).values_list("end", flat=True)) == {timezone.localdate()}
