"""Defects of the key-account listing lifecycle (issue 5, QA): de-listing that left the key-account flag
and the agreements in force, a double click that made two agreements (and relabelled the first one renewed),
signing dates before the issue, tickets stranded in a new account's empty team, evaluations of periods
before the listing that scored 88 on no data, and two project managers on one account."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from django.utils import timezone, translation

from pharmacrm.core.models import AuditEntry, Team
from pharmacrm.core.roles import Role
from pharmacrm.customers import services as customers
from pharmacrm.customers.choices import Tier
from pharmacrm.customers.models import Institution
from pharmacrm.keyaccounts import evaluation, services
from pharmacrm.keyaccounts.choices import AgreementStatus, TeamRole
from pharmacrm.keyaccounts.forms_programme import AgreementForm, SignedForm
from pharmacrm.keyaccounts.models import Agreement, KeyAccount, Score, TeamMember
from pharmacrm.notify.models import Notification
from pharmacrm.servicedesk import routing
from pharmacrm.servicedesk import services as desk
from pharmacrm.servicedesk.choices import AssignMethod, EventKind, Status
from pharmacrm.servicedesk.models import TicketEvent

from .programme_fixtures import *  # noqa: F403
from .programme_fixtures import AREAS, approve_plan, item_data, sign_code, tiny_pdf, tiny_png

pytestmark = pytest.mark.django_db
EN = {"HTTP_ACCEPT_LANGUAGE": "en"}


def delist(make_proposal, manager2, institution):
    proposal = make_proposal(institution, kind="delist")
    return services.decide(manager2, proposal, approve=True, comment="合作结束", otp_code=sign_code(manager2))


def ticket_for(users, institution, category="drug_info"):
    return desk.create_ticket(users["agent"], {"subject": "到货咨询", "channel": "phone", "category": category,
                                               "institution": institution})  # fmt: skip


def sign(users, agreement, day=None):
    upload = SimpleUploadedFile("signed.pdf", tiny_pdf(), content_type="application/pdf")
    return services.record_signed(users["kam"], Agreement.objects.get(pk=agreement.pk),
                                  signed_date=day or timezone.localdate(), upload=upload)  # fmt: skip


def backdate_listing(account, day: dt.date) -> KeyAccount:
    KeyAccount.objects.filter(pk=account.pk).update(
        listed_at=timezone.make_aware(dt.datetime.combine(day, dt.time(10)))
    )
    return KeyAccount.objects.get(pk=account.pk)


@pytest.fixture
def service_desk(make_user, users):
    """An ordinary service team with one agent, and the rule sending drug information requests to it."""
    team = Team.objects.create(name="客服一组")
    agent = make_user("desk1", Role.AGENT, teams=[team])
    routing.create_rule(users["manager"], {"name": "药品咨询", "team": team, "method": AssignMethod.LEAST_LOADED,
                                           "category": desk._category("drug_info")})  # fmt: skip
    return team, agent


# --- 1/2. de-listing removes the flag -----------------------------------------------------------------------


def test_delisting_a_customer_marked_key_before_listing_leaves_it_regular_and_unboosted(
    users, admin_user, xiehe, listed, make_proposal, manager2
):
    customers.update_institution(admin_user, xiehe, {"tier": Tier.KEY})  # by hand, before the rule
    account = listed(xiehe)
    assert account.previous_tier == Tier.KEY
    delist(make_proposal, manager2, xiehe)
    assert Institution.objects.get(pk=xiehe.pk).tier == Tier.REGULAR
    assert AuditEntry.objects.filter(object_type="customers.institution", object_id=str(xiehe.pk),
                                     changes__tier=[Tier.KEY, Tier.REGULAR]).exists()  # fmt: skip
    ticket = ticket_for(users, Institution.objects.get(pk=xiehe.pk))
    assert not ticket.boosted


def test_delisting_gives_the_tier_of_the_latest_evaluation_class(users, admin_user, xiehe, listed, make_proposal,
                                                                 manager2):  # fmt: skip
    customers.update_institution(admin_user, xiehe, {"tier": Tier.KEY})
    listed(xiehe)
    model = evaluation.active_model("evaluation")  # class A → VIP (the default model)
    Score.objects.create(institution=xiehe, kind="evaluation", period="2026H1", model=model, klass="A",
                         as_of=dt.date(2026, 6, 30), score=Decimal("91.00"), components=[])  # fmt: skip
    delist(make_proposal, manager2, xiehe)
    assert Institution.objects.get(pk=xiehe.pk).tier == model.benefits["A"]["tier"] == Tier.VIP


def test_delisting_ends_the_agreements_in_force_and_no_reminder_follows(users, xiehe, with_plan, make_proposal,
                                                                        manager2):  # fmt: skip
    account, _plan = with_plan(xiehe)
    today = timezone.localdate()
    current = services.generate_agreement(users["kam"], account, start_date=today - dt.timedelta(days=300),
                                          end_date=today + dt.timedelta(days=30))  # fmt: skip
    sign(users, current)
    renewal = services.generate_agreement(users["kam"], account, start_date=today + dt.timedelta(days=31),
                                          end_date=today + dt.timedelta(days=395))  # fmt: skip
    delist(make_proposal, manager2, xiehe)
    for agreement in (current, renewal):
        agreement.refresh_from_db()
        assert agreement.status == AgreementStatus.ENDED and agreement.next_check_at is None
        assert AuditEntry.objects.filter(object_type="keyaccounts.agreement", object_id=str(agreement.pk),
                                         changes__status__1=AgreementStatus.ENDED).exists()  # fmt: skip
    assert services.sweep_agreements(now=timezone.now() + dt.timedelta(days=40)) == 0
    assert not Notification.objects.filter(kind="keyaccounts.renewal").exists()
    with translation.override("en"):
        assert current.get_status_display() == "Ended on de-listing"


# --- 3. agreements ------------------------------------------------------------------------------------------


def test_a_second_agreement_for_the_same_plan_and_term_is_refused_naming_the_first(users, xiehe, with_plan,
                                                                                   client_for):  # fmt: skip
    account, _plan = with_plan(xiehe)
    today = timezone.localdate()
    term = {"agreement-start_date": today.isoformat(),
            "agreement-end_date": (today + dt.timedelta(days=364)).isoformat(), "agreement-renewal_notice_days": 60}
    kam = client_for("kam")
    url = reverse("keyaccounts:agreement-create", args=[account.pk])
    assert kam.post(url, term).status_code == 302
    first = account.agreements.get()
    again = kam.post(url, term, **EN)  # the double click
    assert again.status_code == 400
    assert first.number in again.content.decode() and "already covers this plan version" in again.content.decode()
    assert account.agreements.count() == 1
    # signed, it still blocks an overlapping term
    sign(users, first)
    with pytest.raises(ValidationError) as e:
        services.generate_agreement(users["kam"], account, start_date=today + dt.timedelta(days=100),
                                    end_date=today + dt.timedelta(days=500))  # fmt: skip
    assert first.number in e.value.message_dict["start_date"][0]
    # the renewal starts after it
    renewal = services.generate_agreement(users["kam"], account, start_date=today + dt.timedelta(days=365),
                                          end_date=today + dt.timedelta(days=729))  # fmt: skip
    sign(users, renewal)
    first.refresh_from_db()
    assert first.status == AgreementStatus.SIGNED  # in force until the renewal's term begins …
    services.sweep_agreements(now=timezone.make_aware(dt.datetime.combine(renewal.start_date, dt.time(0, 5))))
    first.refresh_from_db()
    assert first.status == AgreementStatus.RENEWED  # … on its start day


def test_signing_an_earlier_agreement_does_not_mark_a_later_one_renewed(users, xiehe, with_plan):
    account, _plan = with_plan(xiehe)
    today = timezone.localdate()
    current = services.generate_agreement(users["kam"], account, start_date=today,
                                          end_date=today + dt.timedelta(days=364))  # fmt: skip
    renewal = services.generate_agreement(users["kam"], account, start_date=today + dt.timedelta(days=365),
                                          end_date=today + dt.timedelta(days=729))  # fmt: skip
    sign(users, renewal)  # the renewal came back signed first
    sign(users, current)
    current.refresh_from_db()
    renewal.refresh_from_db()
    assert (current.status, renewal.status) == (AgreementStatus.SIGNED, AgreementStatus.SIGNED)


def test_a_signing_date_before_the_issue_or_in_the_future_is_a_field_error(users, xiehe, with_plan, client_for):
    account, _plan = with_plan(xiehe)
    today = timezone.localdate()
    agreement = services.generate_agreement(users["kam"], account, start_date=today,
                                            end_date=today + dt.timedelta(days=364))  # fmt: skip
    for day in (today - dt.timedelta(days=1), today + dt.timedelta(days=1)):
        with pytest.raises(ValidationError) as e:
            sign(users, agreement, day)
        assert list(e.value.message_dict) == ["signed_date"]
    prefix = f"signed{agreement.pk}"
    upload = SimpleUploadedFile("signed.pdf", tiny_pdf(), content_type="application/pdf")
    r = client_for("kam").post(reverse("keyaccounts:agreement-signed", args=[agreement.pk]), {
        f"{prefix}-signed_date": (today - dt.timedelta(days=3)).isoformat(), f"{prefix}-signed_copy": upload,
        f"{prefix}-version": agreement.version}, **EN)  # fmt: skip
    assert r.status_code == 400 and "cannot lie before the agreement was issued" in r.content.decode()
    agreement.refresh_from_db()
    assert agreement.status == AgreementStatus.DRAFT and not agreement.signed_copy
    form = SignedForm({f"{prefix}-signed_date": (today + dt.timedelta(days=2)).isoformat()}, prefix=prefix,
                      agreement=agreement)  # fmt: skip
    assert not form.is_valid() and "signed_date" in form.errors
    assert form.fields["signed_date"].widget.attrs["min"] == today.isoformat()


def test_uploading_a_better_scan_keeps_the_recorded_signing_date(users, xiehe, with_plan, client_for):
    """The form of a signed agreement (to upload a better scan) proposed today as the signing date: a KAM replacing
    the copy of an agreement signed five days ago moved its signing to today without noticing, and the history
    read 'signed date: — → today', as if it had never been recorded."""
    account, _plan = with_plan(xiehe)
    today = timezone.localdate()
    agreement = services.generate_agreement(users["kam"], account, start_date=today,
                                            end_date=today + dt.timedelta(days=364))  # fmt: skip
    issued = timezone.now() - dt.timedelta(days=10)
    Agreement.objects.filter(pk=agreement.pk).update(created_at=issued, issued_at=issued)
    signed_on = today - dt.timedelta(days=5)
    sign(users, agreement, signed_on)

    page = client_for("kam").get(reverse("keyaccounts:account", args=[account.pk]), **EN).content.decode()
    field = page[page.index(f'name="signed{agreement.pk}-signed_date"'):]
    assert f'value="{signed_on.isoformat()}"' in field[:field.index(">")]

    sign(users, agreement, signed_on + dt.timedelta(days=1))  # the date corrected with the new scan
    entry = AuditEntry.objects.filter(object_type="keyaccounts.agreement", object_id=str(agreement.pk),
                                      action="update").order_by("-id").first()  # fmt: skip
    assert entry.changes["signed_date"] == [signed_on.isoformat(), (signed_on + dt.timedelta(days=1)).isoformat()]


def test_a_replaced_signed_copy_stays_archived_and_the_history_names_it(users, xiehe, with_plan):
    """A better scan replaces the copy offered for download; the scan it replaces is a signed contract too: it stays
    on disk (never silently lost) and the replacement's audit entry names its file and fingerprint, so it is no
    file nobody points to."""
    account, _plan = with_plan(xiehe)
    today = timezone.localdate()
    agreement = services.generate_agreement(users["kam"], account, start_date=today,
                                            end_date=today + dt.timedelta(days=364))  # fmt: skip
    first = sign(users, agreement)
    earlier, earlier_sha256 = first.signed_copy, first.signed_copy_sha256
    better = SimpleUploadedFile("签署页-清晰.png", tiny_png(), content_type="image/png")
    second = services.record_signed(users["kam"], Agreement.objects.get(pk=agreement.pk), signed_date=today,
                                    upload=better)  # fmt: skip

    assert second.signed_copy != earlier and (services.agreements_dir() / earlier).is_file()
    entry = AuditEntry.objects.filter(object_type="keyaccounts.agreement", object_id=str(agreement.pk),
                                      action="update").order_by("-id").first()  # fmt: skip
    # "File" and "File checksum" on the audit page
    assert entry.changes["file"] == [earlier, second.signed_copy]
    assert entry.changes["sha256"] == [earlier_sha256, second.signed_copy_sha256]
    assert earlier_sha256 != second.signed_copy_sha256


def test_the_nightly_sweep_deletes_only_the_files_a_killed_upload_left_behind(
    users, xiehe, with_plan, settings, tmp_path
):
    """A signed copy is written before the transaction that records it: a worker or web process killed in between
    left a scan in var/agreements/ that no agreement names, kept forever. The nightly sweep deletes such files once
    a day old, and only those: the copy in force, a replaced copy named in the history, the issued PDF and an
    upload still under way stay; one audit entry gives the count."""
    import os

    from pharmacrm.keyaccounts import tasks

    settings.VAR_DIR = tmp_path
    account, _plan = with_plan(xiehe)
    today = timezone.localdate()
    agreement = services.generate_agreement(users["kam"], account, start_date=today,
                                            end_date=today + dt.timedelta(days=364))  # fmt: skip
    replaced = sign(users, agreement).signed_copy
    current = sign(users, agreement).signed_copy  # a better scan: the first one stays archived
    folder = services.agreements_dir()
    killed = folder / f"{agreement.number}-{'a' * 32}.pdf"  # what the killed upload wrote
    killed.write_bytes(tiny_pdf())
    under_way = folder / f"{agreement.number}-{'b' * 32}.pdf"  # an upload writing now
    under_way.write_bytes(tiny_pdf())
    yesterday = (timezone.now() - dt.timedelta(days=2)).timestamp()
    for name in (replaced, current, agreement.document, killed.name):
        os.utime(folder / name, (yesterday, yesterday))

    assert tasks.sweep_agreement_files.call_local() == 1
    assert not killed.exists()
    assert all((folder / name).is_file() for name in (replaced, current, agreement.document, under_way.name))
    entry = AuditEntry.objects.get(object_type="keyaccounts.agreement", action="delete")
    assert entry.extra["count"] == 1 and entry.extra["files"] == [killed.name]
    assert tasks.sweep_agreement_files.call_local() == 0  # nothing left: no second entry
    assert AuditEntry.objects.filter(object_type="keyaccounts.agreement", action="delete").count() == 1


def test_the_agreement_form_proposes_the_plans_validity_then_the_renewal(users, xiehe, staffed):
    account = staffed(xiehe)
    today = timezone.localdate()
    valid_from, valid_to = today + dt.timedelta(days=10), today + dt.timedelta(days=200)
    plan = services.start_plan(users["kam"], account, valid_from=valid_from, valid_to=valid_to)
    for area in AREAS:
        services.save_item(users["kam"], plan, item_data(users, area))
    approve_plan(users, plan)
    form = AgreementForm(prefix="agreement", account=account, initial={"start_date": today})
    assert (form.initial["start_date"], form.initial["end_date"]) == (valid_from, valid_to)
    services.generate_agreement(users["kam"], account, start_date=valid_from, end_date=valid_to)
    form = AgreementForm(prefix="agreement", account=account)
    start, end = form.initial["start_date"], form.initial["end_date"]
    assert start == valid_to + dt.timedelta(days=1) and end - start == valid_to - valid_from


# --- 4. tickets of a new account -------------------------------------------------------------------------------


def test_tickets_of_an_account_without_team_members_route_normally_and_boosted(users, xiehe, listed, service_desk):
    team, agent = service_desk
    account = listed(xiehe)  # approved: its team is still empty
    ticket = ticket_for(users, Institution.objects.get(pk=xiehe.pk))
    assert ticket.team_id == team.pk and ticket.assignee_id == agent.pk  # in an agent's queue
    assert ticket.boosted
    department = xiehe.children.get(name="心内科")  # a department's ticket: the hospital is the key account
    dept_ticket = ticket_for(users, department)
    assert dept_ticket.boosted and dept_ticket.priority == ticket.priority
    services.add_member(users["manager"], account, users["kam"], TeamRole.PROJECT_MANAGER)
    later = ticket_for(users, xiehe)
    assert later.team_id == account.team_id and later.assignee_id == users["kam"].pk


def test_delisting_sends_the_waiting_tickets_back_to_routing(users, xiehe, staffed, service_desk, make_proposal,
                                                             manager2):  # fmt: skip
    team, agent = service_desk
    account = staffed(xiehe)
    for who in ("kam", "expert", "support", "aftersales"):  # nobody on duty: tickets wait in the team queue
        routing.set_on_duty(users[who], users[who], False)
    waiting = ticket_for(users, xiehe)
    other = ticket_for(users, xiehe, category="order_delivery")  # no rule for it
    taken = desk.create_ticket(users["agent"], {"subject": "已分派", "channel": "phone", "category": "drug_info",
                                                "institution": xiehe, "assignee": users["kam"]})  # fmt: skip
    assert {waiting.team_id, other.team_id} == {account.team_id} and waiting.assignee_id is None
    delist(make_proposal, manager2, xiehe)
    waiting.refresh_from_db()
    other.refresh_from_db()
    taken.refresh_from_db()
    assert (waiting.team_id, waiting.assignee_id, waiting.status) == (team.pk, agent.pk, Status.ASSIGNED)
    assert (other.team_id, other.assignee_id) == (None, None)  # the general queue
    assert (taken.team_id, taken.assignee_id) == (account.team_id, users["kam"].pk)  # someone works on it
    assert TicketEvent.objects.filter(ticket=waiting, kind=EventKind.ASSIGNED).exists()
    assert TicketEvent.objects.filter(ticket=other, kind=EventKind.ASSIGNED).exists()


# --- 5. evaluations -----------------------------------------------------------------------------------------


def test_a_period_before_the_listing_is_refused_on_the_period(users, xiehe, with_plan, client_for):
    account, _plan = with_plan(xiehe)  # listed today
    with pytest.raises(ValidationError) as e:
        services.review_account(account, "2025Q1")
    assert list(e.value.message_dict) == ["period"]
    r = client_for("kam").post(reverse("keyaccounts:review-run", args=[account.pk]), {"period-period": "2025Q1"},
                               **EN)  # fmt: skip
    assert r.status_code == 400 and "ended before the customer was listed" in r.content.decode()
    assert not account.reviews.exists()
    assert services.scheduled_reviews(timezone.localdate()) == 0  # the worker leaves it out, without failing
    # nobody served it as a key account then: no card counts it (the team's tenures are backdated by the fixture)
    assert services.scorecards("2025Q1") == []


def test_a_period_after_the_delisting_is_refused(users, xiehe, listed, make_proposal, manager2):
    account = backdate_listing(listed(xiehe), dt.date(2025, 1, 10))
    delist(make_proposal, manager2, xiehe)
    KeyAccount.objects.filter(pk=account.pk).update(
        delisted_at=timezone.make_aware(dt.datetime(2026, 3, 15, 10)))
    account.refresh_from_db()
    with pytest.raises(ValidationError) as e:
        services.review_account(account, "2026Q2")
    assert "period" in e.value.message_dict
    assert services.review_account(account, "2026Q1").period == "2026Q1"  # de-listed during it


def test_a_period_typed_in_full_width_is_the_same_period(users, xiehe, with_plan, client_for):
    """A Chinese input method in full-width mode types ２０２５ or ２０２５Ｑ４: the year 2025 (its quarter), the
    one the worker evaluates and the scorecards read — not a second evaluation labelled ２０２５ beside it."""
    account, _plan = with_plan(xiehe)
    account = backdate_listing(account, dt.date(2025, 1, 10))
    kam = client_for("kam")
    for typed in ("２０２５", "２０２５Ｑ４", "２０２５ｑ４"):
        r = kam.post(reverse("keyaccounts:review-run", args=[account.pk]), {"period-period": typed}, **EN)
        assert r.status_code == 302, typed
    assert sorted(account.reviews.values_list("period", flat=True)) == ["2025", "2025Q4"]
    assert services.scheduled_reviews(dt.date(2026, 1, 5)) == 0  # both are there already
    card = next(c for c in services.scorecards("2025") if c["user"] == users["kam"])
    assert card["average_score"] is not None
    page = client_for("manager").get(reverse("keyaccounts:scorecards"), {"period": "２０２５"}, **EN)
    assert 'data-user="kam"' in page.content.decode()


def test_a_quarter_without_data_scores_the_neutral_default_and_says_no_data(users, xiehe, with_plan, client_for):
    account, _plan = with_plan(xiehe)
    account = backdate_listing(account, dt.date(2026, 5, 1))
    review = services.review_account(account, "2026Q3")
    assert (review.surveys, review.tickets, review.plan_items_due) == (0, 0, 0)
    assert review.score == Decimal("60.00")  # not 100, nor 88
    assert all(c["default"] for c in review.components) and {c["value"] for c in review.components} == {"60.00"}
    page = client_for("kam").get(reverse("keyaccounts:account", args=[account.pk]), **EN).content.decode()
    assert "(default: no data)" in page


def test_measured_components_are_not_marked_default(users, xiehe, with_plan):
    account, _plan = with_plan(xiehe)
    account = backdate_listing(account, dt.date(2026, 5, 1))
    when = timezone.make_aware(dt.datetime(2026, 8, 3, 9))
    desk.create_ticket(users["agent"], {"subject": "咨询", "channel": "phone", "category": "drug_info",
                                        "institution": xiehe, "received_at": when})  # fmt: skip
    review = services.review_account(account, "2026Q3")
    by_name = {c["name"]: c for c in review.components}
    assert review.tickets == 1
    assert not by_name["complaints"].get("default") and by_name["complaints"]["value"] == "100.00"
    assert by_name["satisfaction"]["default"] and by_name["plan"]["default"]


# --- 6. one project manager ------------------------------------------------------------------------------------


def test_a_second_project_manager_is_refused_naming_the_current_one(users, xiehe, listed, make_user, client_for):
    account = listed(xiehe)
    services.add_member(users["manager"], account, users["kam"], TeamRole.PROJECT_MANAGER)
    other = make_user("kam2", Role.KAM)
    with pytest.raises(ValidationError) as e:
        services.add_member(users["manager"], account, other, TeamRole.PROJECT_MANAGER)
    assert str(users["kam"]) in e.value.message_dict["role"][0]
    r = client_for("manager").post(reverse("keyaccounts:member-add", args=[account.pk]),
                                   {"member-role": TeamRole.PROJECT_MANAGER, "member-user": other.pk}, **EN)  # fmt: skip
    assert r.status_code == 400 and "already this account&#x27;s project manager" in r.content.decode()
    assert TeamMember.objects.filter(account=account, role=TeamRole.PROJECT_MANAGER).count() == 1
    # handing over: remove the current one first
    services.remove_member(users["manager"], TeamMember.objects.get(account=account, user=users["kam"]))
    services.add_member(users["manager"], account, other, TeamRole.PROJECT_MANAGER)
    assert TeamMember.objects.get(account=account, role=TeamRole.PROJECT_MANAGER).user == other


def test_last_years_evaluation_is_made_up_after_a_worker_stopped_all_january(users, xiehe, with_plan):
    """The yearly evaluation ran only on January nights: a worker down all January left the year without one."""
    import datetime as dt

    from pharmacrm.keyaccounts.models import AccountReview, KeyAccount

    account, _plan = with_plan(xiehe)
    listed = timezone.make_aware(dt.datetime(2025, 3, 1, 10))
    KeyAccount.objects.filter(pk=account.pk).update(listed_at=listed)
    assert services.scheduled_reviews(dt.date(2026, 2, 3)) == 2  # 2025Q4 and the year 2025
    assert set(AccountReview.objects.filter(account=account).values_list("period", flat=True)) == {"2025Q4", "2025"}
    assert services.scheduled_reviews(dt.date(2026, 2, 4)) == 0  # once


@pytest.mark.postgresql
@pytest.mark.django_db(transaction=True)
def test_an_item_given_to_a_member_being_removed_refuses_one_of_the_two(users, xiehe, staffed, monkeypatch):
    """The KAM gives a draft's item to the product expert while a manager removes the expert from the team, both
    checked before either wrote: the item was saved with an owner outside the team (nobody could hand it over,
    the owner no longer served the account). Now one of the two is refused with its message."""
    import threading

    from django.db import connection

    from pharmacrm.keyaccounts.models import PlanItem

    account = staffed(xiehe)
    plan = services.start_plan(users["kam"], account)
    expert = TeamMember.objects.get(account=account, user=users["expert"])
    both_allowed = threading.Barrier(2, timeout=20)
    original = services.require_manage

    def allowed_then_wait(user, acct):
        original(user, acct)
        both_allowed.wait()  # both changes are under way before either has written

    monkeypatch.setattr(services, "require_manage", allowed_then_wait)
    refused: list[str] = []

    def run(change):
        try:
            with translation.override("en"):
                change()
        except ValidationError as e:
            refused.extend(e.messages)
        finally:
            connection.close()

    threads = [
        threading.Thread(target=run, args=(lambda: services.remove_member(users["manager"], expert),)),
        threading.Thread(target=run, args=(lambda: services.save_item(users["kam"], plan,
                                                                      item_data(users, AREAS[1], owner="expert")),)),
    ]  # fmt: skip
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    monkeypatch.setattr(services, "require_manage", original)
    still_member = TeamMember.objects.filter(account=account, user=users["expert"]).exists()
    item_saved = PlanItem.objects.filter(plan=plan, owner=users["expert"]).exists()
    assert still_member == item_saved  # never an item owned by someone outside the team
    assert len(refused) == 1 and (
        refused[0].startswith("Give this member's open plan items to someone else first")  # naming it (session 37)
        or refused[0] == "The owner must be a member of the account's service team."
    )
