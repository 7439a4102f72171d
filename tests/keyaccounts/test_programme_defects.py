"""Defects found in the key-account programme's review: new plan versions that lost progress and repeated
overdue alerts, items counted once per version in evaluations and scorecards, an agreement that never
expired, de-listed accounts that kept taking work and alerts, a far deadline that crashed the approval,
a formula in the progress report, the report's "latest" evaluation, and a manager who could send someone
else's proposal to leadership and approve it."""

import datetime as dt
import io

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from django.utils import timezone
from openpyxl import load_workbook
from rest_framework.test import APIClient

from pharmacrm.keyaccounts import services
from pharmacrm.keyaccounts.choices import AgreementStatus, ItemStatus, PlanArea, ProposalStatus
from pharmacrm.keyaccounts.models import Agreement, PlanItem
from pharmacrm.notify.models import Notification
from tests.api.conftest import token_for

from .programme_fixtures import *  # noqa: F403
from .programme_fixtures import approve_plan, item_data, sign_code, tiny_pdf

pytestmark = pytest.mark.django_db


def listed_since(account, day: dt.date):
    """The account as if listed on `day`: a period is evaluated only from the listing on."""
    from pharmacrm.keyaccounts.models import KeyAccount

    KeyAccount.objects.filter(pk=account.pk).update(
        listed_at=timezone.make_aware(dt.datetime.combine(day, dt.time(10))))
    return KeyAccount.objects.get(pk=account.pk)


# --- plan versions ------------------------------------------------------------------------------------------


def test_progress_reported_while_the_next_version_is_drafted_is_kept(users, xiehe, with_plan):
    account, first = with_plan(xiehe)
    second = services.start_plan(users["kam"], account)  # copies the items as they are now
    training = first.items.get(area=PlanArea.TRAINING)
    services.update_progress(users["kam"], training, status=ItemStatus.DONE, note="培训已完成")
    supply = first.items.get(area=PlanArea.SUPPLY)
    services.update_progress(users["kam"], supply, status=ItemStatus.IN_PROGRESS, progress=40)
    second = approve_plan(users, second)
    carried = second.items.get(area=PlanArea.TRAINING)
    assert carried.status == ItemStatus.DONE and carried.progress == 100 and carried.completed_at
    assert carried.progress_note == "培训已完成" and carried.next_check_at is None
    assert (second.items.get(area=PlanArea.SUPPLY).status, second.items.get(area=PlanArea.SUPPLY).progress) == (
        ItemStatus.IN_PROGRESS, 40)  # fmt: skip


def test_an_overdue_item_is_not_reported_again_by_the_next_version(users, xiehe, with_plan):
    account, first = with_plan(xiehe, deadline=timezone.localdate() + dt.timedelta(days=1))
    later = timezone.now() + dt.timedelta(days=5)
    assert services.sweep_plan_items(now=later) == 4
    second = services.start_plan(users["kam"], account)
    approve_plan(users, second)
    assert services.sweep_plan_items(now=later + dt.timedelta(hours=1)) == 0
    assert Notification.objects.filter(kind="keyaccounts.overdue", recipient=users["kam"]).count() == 4


def test_a_changed_deadline_in_the_next_version_is_watched_again(users, xiehe, with_plan):
    account, first = with_plan(xiehe, deadline=timezone.localdate() + dt.timedelta(days=1))
    later = timezone.now() + dt.timedelta(days=5)
    assert services.sweep_plan_items(now=later) == 4
    second = services.start_plan(users["kam"], account)
    item = second.items.get(area=PlanArea.SUPPLY)
    services.save_item(users["kam"], second, {**item_data(users, PlanArea.SUPPLY),
                                              "deadline": timezone.localdate() + dt.timedelta(days=2)}, item=item)  # fmt: skip
    approve_plan(users, second)
    # only the item with the new deadline is watched again, and told once when it passes
    assert services.sweep_plan_items(now=later + dt.timedelta(hours=1)) == 1


def test_evaluation_and_scorecards_count_an_item_once_across_versions(users, xiehe, with_plan):
    account, first = with_plan(xiehe)
    first.items.update(deadline=dt.date(2025, 11, 14))  # due last year (a new item may not lie in the past)
    services.update_progress(users["kam"], first.items.get(area=PlanArea.SUPPLY), status=ItemStatus.DONE)
    approve_plan(users, services.start_plan(users["kam"], account))
    account = listed_since(account, dt.date(2025, 10, 1))
    review = services.review_account(account, "2025Q4")
    assert (review.plan_items_due, review.plan_items_on_time) == (4, 0)  # done today: a year late
    card = next(c for c in services.scorecards("2025Q4") if c["user"] == users["kam"])
    assert (card["items_due"], card["items_on_time"]) == (4, 0)


# --- agreements ----------------------------------------------------------------------------------------------


def test_a_signed_copy_replaced_after_the_reminder_still_expires(users, xiehe, with_plan, settings, tmp_path):
    settings.VAR_DIR = tmp_path
    account, _plan = with_plan(xiehe)
    today = timezone.localdate()
    agreement = services.generate_agreement(users["kam"], account, start_date=today - dt.timedelta(days=300),
                                            end_date=today + dt.timedelta(days=30))  # fmt: skip
    services.record_signed(users["kam"], agreement, signed_date=today,
                           upload=SimpleUploadedFile("s.pdf", tiny_pdf(), content_type="application/pdf"))  # fmt: skip
    assert services.sweep_agreements(now=timezone.now() + dt.timedelta(days=1)) == 1
    agreement.refresh_from_db()
    services.record_signed(users["kam"], agreement, signed_date=today,  # a better scan of the same signing
                           upload=SimpleUploadedFile("s2.pdf", tiny_pdf(), content_type="application/pdf"))  # fmt: skip
    assert services.sweep_agreements(now=timezone.now() + dt.timedelta(days=32)) == 0  # no second reminder
    agreement.refresh_from_db()
    assert agreement.status == AgreementStatus.EXPIRED


def _pdf(name="s.pdf"):
    return SimpleUploadedFile(name, tiny_pdf(), content_type="application/pdf")


def _better_scan(users, opened):
    """A better scan of the signing, uploaded from a page that showed the agreement `opened`."""
    return services.record_signed(users["kam"], opened, signed_date=opened.signed_date, upload=_pdf("s2.pdf"),
                                  version=opened.version)  # fmt: skip


def _reminded_with_a_page_open(users, xiehe, with_plan):
    """An agreement signed today that ends in 30 days, the KAM's page showing it, then the renewal reminder."""
    account, _plan = with_plan(xiehe)
    today = timezone.localdate()
    agreement = services.generate_agreement(users["kam"], account, start_date=today - dt.timedelta(days=300),
                                            end_date=today + dt.timedelta(days=30))  # fmt: skip
    services.record_signed(users["kam"], agreement, signed_date=today, upload=_pdf())
    opened = Agreement.objects.get(pk=agreement.pk)  # the KAM's page
    assert services.sweep_agreements(now=timezone.now() + dt.timedelta(days=1)) == 1  # the renewal reminder
    return agreement, opened


def test_a_scan_sent_from_a_page_opened_before_the_expiry_does_not_undo_it(users, xiehe, with_plan, settings,
                                                                           tmp_path):  # fmt: skip
    """The nightly sweep expired the agreement without raising its version: a better scan uploaded from a page
    opened before was accepted and made the agreement signed (in force) again."""
    settings.VAR_DIR = tmp_path
    agreement, opened = _reminded_with_a_page_open(users, xiehe, with_plan)
    services.sweep_agreements(now=timezone.now() + dt.timedelta(days=32))  # it ends
    with pytest.raises(services.StaleVersion):
        _better_scan(users, opened)
    agreement.refresh_from_db()
    assert agreement.status == AgreementStatus.EXPIRED and agreement.next_check_at is None


def test_a_scan_sent_from_a_page_opened_before_the_renewal_reminder_is_taken_and_keeps_its_clock(
    users, xiehe, with_plan, settings, tmp_path
):
    """The reminder raised the agreement's version, so a better scan uploaded from a page opened the day before
    was refused as "changed by someone else", though nobody had changed anything the page showed. The scan is
    taken now, and the reminder is neither sent again nor lost: the agreement still expires at its end."""
    settings.VAR_DIR = tmp_path
    agreement, opened = _reminded_with_a_page_open(users, xiehe, with_plan)
    reminders = Notification.objects.filter(kind="keyaccounts.renewal").count()
    _better_scan(users, opened)
    agreement.refresh_from_db()
    assert agreement.signed_copy_name == "s2.pdf" and agreement.renewal_notified_at is not None
    assert agreement.next_check_at == services._expiry_moment(agreement)
    assert services.sweep_agreements(now=timezone.now() + dt.timedelta(days=2)) == 0  # not reminded again
    assert reminders and Notification.objects.filter(kind="keyaccounts.renewal").count() == reminders
    services.sweep_agreements(now=timezone.now() + dt.timedelta(days=32))
    agreement.refresh_from_db()
    assert agreement.status == AgreementStatus.EXPIRED and agreement.next_check_at is None


def test_a_scan_sent_from_a_page_opened_before_the_renewal_does_not_undo_it(users, xiehe, with_plan, settings,
                                                                            tmp_path):  # fmt: skip
    """Signing the renewal marked the earlier agreement renewed without raising its version: a better scan of the
    earlier one, from a page opened before, made it signed (in force) again, next to its renewal."""
    settings.VAR_DIR = tmp_path
    account, _plan = with_plan(xiehe)
    today = timezone.localdate()
    current = services.generate_agreement(users["kam"], account, start_date=today,
                                          end_date=today + dt.timedelta(days=364))  # fmt: skip
    services.record_signed(users["kam"], current, signed_date=today, upload=_pdf())
    opened = Agreement.objects.get(pk=current.pk)
    renewal = services.generate_agreement(users["kam"], account, start_date=today + dt.timedelta(days=365),
                                          end_date=today + dt.timedelta(days=729))  # fmt: skip
    services.record_signed(users["kam"], renewal, signed_date=today, upload=_pdf())
    # the renewal takes over on its start day (the earlier one is in force until then)
    services.sweep_agreements(now=timezone.make_aware(dt.datetime.combine(renewal.start_date, dt.time(0, 5))))
    with pytest.raises(services.StaleVersion):
        _better_scan(users, opened)
    current.refresh_from_db()
    assert current.status == AgreementStatus.RENEWED


# --- de-listed accounts ------------------------------------------------------------------------------------


def test_a_delisted_account_takes_no_new_work_and_sends_no_alerts(users, xiehe, with_plan, make_proposal, manager2,
                                                                 client_for):  # fmt: skip
    account, plan = with_plan(xiehe, deadline=timezone.localdate() + dt.timedelta(days=1))
    draft = services.start_plan(users["kam"], account)
    services.submit_plan(users["kam"], draft)
    draft.refresh_from_db()
    proposal = make_proposal(xiehe, kind="delist")
    services.decide(manager2, proposal, approve=True, comment="合作结束", otp_code=sign_code(manager2))
    kam, today = users["kam"], timezone.localdate()
    attempts = [
        lambda: services.update_progress(kam, plan.items.first(), status=ItemStatus.IN_PROGRESS, progress=10),
        lambda: services.generate_agreement(kam, account, start_date=today, end_date=today + dt.timedelta(days=90)),
        lambda: services.record_meeting(kam, account, {"held_at": timezone.now(), "title": "例会", "minutes": "纪要"}),
        lambda: services.decide_plan(users["manager"], draft, approve=True, otp_code=sign_code(users["manager"])),
    ]  # fmt: skip
    for attempt in attempts:
        with pytest.raises(ValidationError):
            attempt()
    # the plan in force's clocks stay stopped: nobody is told about a de-listed account's items
    assert services.sweep_plan_items(now=timezone.now() + dt.timedelta(days=5)) == 0
    assert not Notification.objects.filter(kind="keyaccounts.overdue").exists()
    # its submitted plan no longer waits in leadership's inbox
    inbox = client_for("manager").get(reverse("keyaccounts:inbox")).content.decode()
    assert reverse("keyaccounts:account", args=[account.pk]) not in inbox
    # nor through the API
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token_for(kam)}", HTTP_ACCEPT_LANGUAGE="en")
    item = plan.items.first()
    r = client.post(f"/api/v1/keyaccounts/plan-items/{item.pk}/progress/", {"status": "done"}, format="json")
    assert r.status_code == 400
    item.refresh_from_db()
    assert item.status == ItemStatus.PLANNED


# --- bad input -----------------------------------------------------------------------------------------------


def test_a_deadline_past_the_calendar_is_a_field_error_not_a_crash(users, xiehe, staffed, client_for):
    account = staffed(xiehe)
    plan = services.start_plan(users["kam"], account)
    with pytest.raises(ValidationError) as e:
        services.save_item(users["kam"], plan, item_data(users, PlanArea.SUPPLY, dt.date(9999, 12, 31)))
    assert "deadline" in e.value.error_dict
    r = client_for("kam").post(reverse("keyaccounts:item-add", args=[account.pk]), {
        "item-area": PlanArea.SUPPLY, "item-title": "到货保障", "item-standard": "48 小时",
        "item-owner": users["kam"].pk, "item-deadline": "9999-12-31"})  # fmt: skip
    assert r.status_code == 400 and not PlanItem.objects.filter(plan=plan).exists()


# --- the progress report -----------------------------------------------------------------------------------------


def test_the_report_writes_a_formula_like_customer_name_as_text(users, admin_user, beijing, with_plan, client_for):
    from pharmacrm.customers import services as customers

    name = '=HYPERLINK("http://example.com","点这里")'
    inst = customers.create_institution(admin_user, {"name": name, "kind": "hospital", "region": beijing})
    with_plan(inst)
    xlsx = client_for("manager").get(reverse("keyaccounts:report-xlsx"))
    cell = load_workbook(io.BytesIO(xlsx.content)).active.cell(2, 2)
    assert cell.data_type == "s" and cell.value == name


def test_the_report_shows_the_latest_period_not_the_last_computed(users, xiehe, with_plan, client_for):
    account, _plan = with_plan(xiehe)
    account = listed_since(account, dt.date(2025, 7, 1))
    services.review_account(account, "2025Q4")
    services.review_account(account, "2025Q3")  # recomputed afterwards
    xlsx = client_for("manager").get(reverse("keyaccounts:report-xlsx"))
    assert load_workbook(io.BytesIO(xlsx.content)).active.cell(2, 7).value == "2025Q4"


def test_the_account_page_lists_its_evaluations_latest_period_first(users, xiehe, with_plan, client_for):
    """The page sorted the evaluations by their label: the year 2025, evaluated in January with every quarter of it,
    came below 2025Q1 — and, eight shown, dropped off the page before quarters older than itself — while the API and
    the progress report put the latest period first."""
    import re

    account, _plan = with_plan(xiehe)
    account = listed_since(account, dt.date(2025, 1, 1))
    for period in ("2025Q1", "2025Q2", "2025Q3", "2025Q4", "2025"):
        services.review_account(account, period)
    page = client_for("manager").get(reverse("keyaccounts:account", args=[account.pk])).content.decode()
    shown = re.findall(r'class="subform account-review" data-period="([^"]+)"', page)
    assert shown == ["2025Q4", "2025", "2025Q3", "2025Q2", "2025Q1"]


# --- proposals -------------------------------------------------------------------------------------------------


def test_a_manager_cannot_send_someone_elses_proposal_and_decide_it(users, xiehe, make_proposal, client_for):
    proposal = make_proposal(xiehe, submitted=False)
    with pytest.raises(PermissionDenied):
        services.submit_for_decision(users["manager"], proposal)
    r = client_for("manager").post(reverse("keyaccounts:proposal-submit", args=[proposal.pk]),
                                   {"submit-version": proposal.version})  # fmt: skip
    assert r.status_code == 403
    proposal.refresh_from_db()
    assert proposal.status == ProposalStatus.REVIEW
    services.submit_for_decision(users["analyst"], proposal)  # marketing sends it
    proposal.refresh_from_db()
    assert proposal.status == ProposalStatus.SUBMITTED


def test_who_sent_a_proposal_for_decision_may_not_decide_it_even_holding_both_roles(
    users, xiehe, make_proposal, make_user
):
    from django.contrib.auth.models import Group
    from django.test import Client

    from pharmacrm.core.roles import Role

    both = make_user("marketing_lead", Role.ANALYST)  # marketing, and also in the leadership
    both.groups.add(Group.objects.get(name=Role.MANAGER.value))
    proposal = make_proposal(xiehe, submitted=False)
    services.submit_for_decision(both, proposal)
    proposal.refresh_from_db()
    assert (proposal.status, proposal.submitted_by) == (ProposalStatus.SUBMITTED, both)

    with pytest.raises(PermissionDenied):
        services.decide(both, proposal, approve=True, otp_code=sign_code(both))
    client = Client()
    client.force_login(both)
    page = client.get(reverse("keyaccounts:proposal", args=[proposal.pk]))
    assert "该提名由您提交审批，须由其他厂领导作出决定。" in page.content.decode()
    inbox = client.get(reverse("keyaccounts:inbox"))
    assert proposal.number not in inbox.content.decode()

    services.decide(users["manager"], proposal, approve=True, otp_code=sign_code(users["manager"]))
    proposal.refresh_from_db()
    assert (proposal.status, proposal.decided_by) == (ProposalStatus.APPROVED, users["manager"])
