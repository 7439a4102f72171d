"""Defects found in review: movement across cadences, who runs an account, who withdraws, KOL imports
keeping assessments, who reviews a plan, what a proposal shows to roles without purchases."""

from __future__ import annotations

import datetime as dt

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone

from pharmacrm.core.roles import Role
from pharmacrm.keyaccounts import evaluation, influence, services
from pharmacrm.keyaccounts.choices import ModelKind, ProposalStatus
from pharmacrm.keyaccounts.models import MarketInfluence, Score
from tests.concurrency import held_while

from .eval_fixtures import *  # noqa: F403  (fixtures)
from .eval_fixtures import H1_2026
from .programme_fixtures import *  # noqa: F403  (fixtures)
from .programme_fixtures import AREAS, item_data, sign_code

pytestmark = pytest.mark.django_db


def test_a_quarterly_key_account_run_is_not_the_previous_period_of_a_half_year(purchases, staffed, users):
    xiehe = purchases["xiehe"]
    evaluation.run(ModelKind.EVALUATION, as_of=H1_2026)  # 2026H1, every customer
    staffed(xiehe)  # xiehe becomes a key account
    evaluation.run(ModelKind.EVALUATION, as_of=H1_2026.replace(month=12, day=31), key_accounts_only=True)  # 2026Q4
    run = evaluation.run(ModelKind.EVALUATION, as_of=H1_2026.replace(month=12, day=31))  # 2026H2
    assert run.period == "2026H2"
    h2 = {s.institution_id: s for s in Score.objects.filter(kind=ModelKind.EVALUATION, period="2026H2")}
    h1 = {s.institution_id: s for s in Score.objects.filter(kind=ModelKind.EVALUATION, period="2026H1")}
    # every customer's previous class is its 2026H1 class, not "new" because the quarter held key accounts only
    for inst, score in h2.items():
        assert score.previous_klass == h1[inst].klass
    # the first key-account quarter has no quarter before it: it moves from the last half-year that ended
    # before the quarter began (2026H1), instead of showing a long-evaluated key account as new
    q4 = Score.objects.get(kind=ModelKind.EVALUATION, period="2026Q4", institution=xiehe)
    assert (q4.previous_klass, q4.previous_score) == (h1[xiehe.pk].klass, h1[xiehe.pk].score)
    # the next quarter moves from this one
    evaluation.run(ModelKind.EVALUATION, as_of=dt.date(2027, 3, 31), key_accounts_only=True)  # 2027Q1
    q1 = Score.objects.get(kind=ModelKind.EVALUATION, period="2027Q1", institution=xiehe)
    assert (q1.previous_klass, q1.previous_score) == (q4.klass, q4.score)


def test_the_evaluation_page_shows_the_half_year_rather_than_the_key_account_quarter(purchases, staffed, client_for):
    evaluation.run(ModelKind.EVALUATION, as_of=H1_2026)
    staffed(purchases["xiehe"])
    evaluation.run(ModelKind.EVALUATION, as_of=H1_2026, key_accounts_only=True)
    page = client_for("analyst").get("/keyaccounts/evaluations/")
    assert page.context["period"] == "2026H1"


def test_only_leadership_and_the_project_manager_run_an_account(staffed, make_user, users, xiehe):
    account = staffed(xiehe)
    other_kam = make_user("kam2", Role.KAM)
    assert services.may_manage(users["kam"], account)  # the project manager
    assert services.may_manage(users["manager"], account)
    assert not services.may_manage(other_kam, account)
    with pytest.raises(PermissionDenied):
        services.start_plan(other_kam, account)


def test_only_the_proposer_withdraws_and_only_leadership_once_submitted(make_proposal, make_user, users, xiehe):
    analyst2 = make_user("analyst2", Role.ANALYST)
    in_review = make_proposal(xiehe, submitted=False)
    with pytest.raises(PermissionDenied):
        services.withdraw(analyst2, in_review)
    services.submit_for_decision(users["analyst"], in_review)
    in_review.refresh_from_db()
    with pytest.raises(PermissionDenied):
        services.withdraw(users["analyst"], in_review)  # waiting for leadership now
    services.withdraw(users["manager"], in_review)
    in_review.refresh_from_db()
    assert in_review.status == ProposalStatus.WITHDRAWN


def test_a_kol_file_without_an_assessment_column_keeps_the_assessment(users, xiehe):
    influence.save_influence(users["analyst"], xiehe, {"kol_count": 1, "kol_names": "张伟", "assessment": 88,
                                                       "notes": "学会主委"})  # fmt: skip
    csv_text = f"统一社会信用代码,KOL人数\n{xiehe.credit_code},4\n"
    upload = SimpleUploadedFile("kol.csv", csv_text.encode("utf-8"), content_type="text/csv")
    saved, errors = influence.import_kols(users["analyst"], upload)
    assert (saved, errors) == (1, [])
    row = MarketInfluence.objects.get(institution=xiehe)
    assert (row.kol_count, row.assessment, row.notes, row.kol_names) == (4, 88, "学会主委", "张伟")


def test_a_kol_file_finds_a_credit_code_written_in_full_width_or_with_spaces(users, xiehe):
    """Marketing's KOL sheet had its codes copied from a web page or typed with a Chinese input method: in full
    width, in lower case, in groups of digits. Customers are found by the code as every import reads it; the file
    answered 'No customer with this credit code' for each of those rows."""
    code = xiehe.credit_code
    full_width = code.translate({c: c + 0xFEE0 for c in range(0x21, 0x7F)})
    spaced = f"{code[:6]} {code[6:12]} {code[12:].lower()}\u200b"
    csv_text = f"统一社会信用代码,市场影响力评分\n{full_width},85\n{spaced},86\n"
    upload = SimpleUploadedFile("kol.csv", csv_text.encode("utf-8"), content_type="text/csv")
    assert influence.import_kols(users["analyst"], upload) == (2, [])
    assert MarketInfluence.objects.get(institution=xiehe).assessment == 86


def test_a_kol_file_reads_headers_typed_in_full_width(users, xiehe):
    """The headers of the template typed with a Chinese input method in full-width mode — ＫＯＬ人数, ＫＯＬ姓名 — were
    not recognised: the file was imported "successfully" without the KOLs, whose columns were silently left out."""
    csv_text = f"统一社会信用代码,ＫＯＬ人数,ＫＯＬ姓名\n{xiehe.credit_code},3,张伟、李娜\n"
    upload = SimpleUploadedFile("kol.csv", csv_text.encode("utf-8"), content_type="text/csv")
    assert influence.import_kols(users["analyst"], upload) == (1, [])
    row = MarketInfluence.objects.get(institution=xiehe)
    assert (row.kol_count, row.kol_names) == (3, "张伟、李娜")


def test_a_manager_who_submitted_a_plan_cannot_review_it(staffed, manager2, users, xiehe):
    account = staffed(xiehe)
    manager = users["manager"]
    plan = services.start_plan(manager, account)
    for area in AREAS:
        services.save_item(manager, plan, item_data(users, area))
    services.submit_plan(manager, plan)
    plan.refresh_from_db()
    with pytest.raises(PermissionDenied):
        services.decide_plan(manager, plan, approve=True, otp_code=sign_code(manager))
    services.decide_plan(manager2, plan, approve=True, otp_code=sign_code(manager2))


def test_a_proposal_shows_purchase_figures_only_to_roles_that_see_purchases(make_proposal, candidate, client_for, xiehe):
    candidate(xiehe)
    proposal = make_proposal(xiehe, submitted=False)
    agent = client_for("agent").get(f"/api/v1/keyaccounts/proposals/{proposal.pk}/")
    assert agent.status_code == 200
    assert all("detail" not in c for c in agent.json()["components"])
    kam = client_for("kam").get(f"/api/v1/keyaccounts/proposals/{proposal.pk}/")
    assert any("detail" in c for c in kam.json()["components"])
    page = client_for("agent").get(f"/keyaccounts/proposals/{proposal.pk}/").content.decode()
    assert "1,200,000" not in page and "{&#x27;" not in page




@pytest.mark.parametrize("period", ["9999Q4", "0001Q1", "2026Q7", "2099", str(dt.date.today().year) + "Q4"])
def test_impossible_or_unfinished_periods_are_field_errors(period):
    with pytest.raises(ValidationError) as e:
        services.period_bounds(period)
    assert "period" in e.value.error_dict


def test_the_scorecard_page_answers_a_bad_period_with_a_message(client_for):
    page = client_for("manager").get("/keyaccounts/scorecards/?period=9999Q4")
    assert page.status_code == 200 and page.context["error"]


def test_agreement_dates_are_bounded(with_plan, users, xiehe):
    account, _plan = with_plan(xiehe)
    today = timezone.localdate()
    with pytest.raises(ValidationError) as e:
        services.generate_agreement(users["kam"], account, start_date=dt.date(1, 1, 1), end_date=dt.date(1, 1, 5))
    assert "start_date" in e.value.error_dict
    with pytest.raises(ValidationError) as e:
        services.generate_agreement(users["kam"], account, start_date=today, end_date=dt.date(9999, 12, 31))
    assert "end_date" in e.value.error_dict
    with pytest.raises(ValidationError) as e:
        services.generate_agreement(users["kam"], account, start_date=today, end_date=today + dt.timedelta(days=30),
                                    renewal_notice_days=60)  # fmt: skip
    assert "renewal_notice_days" in e.value.error_dict


def test_a_meeting_in_the_year_one_is_a_field_error(staffed, users, xiehe):
    account = staffed(xiehe)
    held = timezone.make_aware(dt.datetime(1, 1, 2))
    with pytest.raises(ValidationError) as e:
        services.record_meeting(users["kam"], account, {"held_at": held, "title": "t", "minutes": "m"})
    assert "held_at" in e.value.error_dict


def test_a_kol_file_with_a_huge_cell_is_refused_cleanly(users):
    upload = SimpleUploadedFile("kol.csv", ("统一社会信用代码,备注\nX,\"" + "长" * 140_000 + "\"\n").encode(),
                                content_type="text/csv")  # fmt: skip
    with pytest.raises(ValidationError):
        influence.import_kols(users["analyst"], upload)


def meeting_with_one_action(users, account):
    """A service meeting with one open action item, the key-account manager's."""
    return services.record_meeting(
        users["kam"], account,
        {"held_at": timezone.now(), "title": "季度沟通会", "minutes": "纪要"},
        [{"title": "补货", "owner": users["kam"], "due_date": timezone.localdate()}],
    )  # fmt: skip


def test_marking_an_action_done_twice_leaves_it_done(staffed, users, client_for, xiehe):
    account = staffed(xiehe)
    meeting = meeting_with_one_action(users, account)
    action = meeting.actions.get()
    kam = client_for("kam")
    url = f"/keyaccounts/{account.pk}/meetings/actions/{action.pk}/"
    kam.post(url, {"done": "1"})
    kam.post(url, {"done": "1"})  # a double click, or a stale page
    action.refresh_from_db()
    assert action.done_at is not None


@pytest.mark.postgresql
@pytest.mark.django_db(transaction=True)
def test_an_action_marked_done_by_two_clicks_at_once_is_done_once(staffed, users, xiehe):
    """The owner and the key-account manager mark the same action done at the same moment (or one double click
    sent twice): both requests read it as open, both saved, and the second moved the moment it was done and
    wrote a second audit entry. Now the second waits for the first and finds the action done."""
    from pharmacrm.core.models import AuditEntry
    from pharmacrm.keyaccounts.models import MeetingAction

    account = staffed(xiehe)
    meeting = meeting_with_one_action(users, account)
    first, second = MeetingAction.objects.get(), MeetingAction.objects.get()  # each request's own read: open
    clicked: dict[bool, object] = {}
    seen: list = []

    def click(action, holding):
        clicked[holding] = services.complete_action(users["kam"], action, done=True).done_at

    def still_open():  # not committed yet: still open here
        seen.append(MeetingAction.objects.values_list("done_at", flat=True).get())

    held_while(lambda: click(first, True), lambda: click(second, False), meanwhile=still_open)
    done_at = seen[0]
    assert done_at is None
    assert MeetingAction.objects.get().done_at == clicked[True]  # the moment of the first click
    entries = AuditEntry.objects.filter(
        object_type="keyaccounts.meeting", object_id=str(meeting.pk), action="update"
    )
    assert entries.count() == 1


def test_a_kol_file_finds_a_merged_customers_code_on_the_record_it_was_merged_into(users, xiehe, admin_user, beijing):
    """Marketing's KOL sheet still carries the credit code of a duplicate merged into 协和, which keeps its own (the
    merge frees the duplicate's): the row was refused as naming no customer, where the order import follows the
    merge. The duplicate's external id, which 协和 lacked, moved to 协和 with the merge."""
    from pharmacrm.customers import normalise
    from pharmacrm.customers import services as customers

    duplicate = customers.create_institution(admin_user, {
        "name": "中国医学科学院北京协和医院", "kind": "hospital", "region": beijing, "external_id": "ERP-XH",
        "credit_code": normalise.make_credit_code("12100000400000777"),
    })  # fmt: skip
    code = duplicate.credit_code
    customers.merge(admin_user, xiehe, duplicate)
    csv_text = f"统一社会信用代码,客户外部编号,KOL人数\n{code},,3\n,ERP-XH,4\n"
    upload = SimpleUploadedFile("kol.csv", csv_text.encode("utf-8"), content_type="text/csv")

    assert influence.import_kols(users["analyst"], upload) == (2, [])
    assert MarketInfluence.objects.get(institution=xiehe).kol_count == 4
    assert not MarketInfluence.objects.filter(institution=duplicate).exists()
