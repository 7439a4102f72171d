"""Sixteenth session: a customer merge carries the duplicate's key opinion leaders and marketing's assessment
to the survivor (they stayed on the inactive duplicate, so the survivor's market influence scored as if
marketing had never entered them)."""

from __future__ import annotations

import datetime as dt

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from pharmacrm.core.models import AuditEntry
from pharmacrm.customers import services as customers
from pharmacrm.keyaccounts import influence
from pharmacrm.keyaccounts.models import MarketInfluence


def _copy(admin, of, name):
    return customers.create_institution(admin, {"name": name, "kind": "hospital", "grade": "3A", "region": of.region})


def test_the_survivor_without_influence_takes_the_duplicates(admin_user, xiehe):
    duplicate = _copy(admin_user, xiehe, "北京协和医院东院")
    influence.save_influence(admin_user, duplicate, {"kol_names": "张三、李四", "assessment": "80", "notes": "院长在指南委员会"})
    customers.merge(admin_user, xiehe, duplicate)
    mine = MarketInfluence.objects.get(institution=xiehe)
    assert (mine.kol_count, mine.kol_names, mine.assessment, mine.notes) == (2, "张三、李四", 80, "院长在指南委员会")
    entry = AuditEntry.objects.filter(object_type="keyaccounts.marketinfluence", action=AuditEntry.Action.CREATE).order_by("seq").last()
    assert entry.extra["merged"] == duplicate.pk and entry.actor_id == admin_user.pk
    # the duplicate keeps its record as it was (history)
    assert MarketInfluence.objects.get(institution=duplicate).kol_names == "张三、李四"


def test_both_records_combine_names_keep_the_survivors_assessment(admin_user, xiehe):
    duplicate = _copy(admin_user, xiehe, "北京协和医院西院")
    influence.save_influence(admin_user, xiehe, {"kol_names": "张三, 王五", "kol_count": "3", "assessment": "60"})
    influence.save_influence(admin_user, duplicate, {"kol_names": "张三、李四", "assessment": "90", "notes": "外科强"})
    customers.merge(admin_user, xiehe, duplicate)
    mine = MarketInfluence.objects.get(institution=xiehe)
    assert mine.kol_names == "张三、王五、李四"
    assert mine.kol_count == 3 and mine.assessment == 60 and mine.notes == "外科强"
    assert mine.version == 2
    entry = AuditEntry.objects.filter(object_type="keyaccounts.marketinfluence", action=AuditEntry.Action.UPDATE).order_by("seq").last()
    assert set(entry.changes) == {"kol_names", "notes"}


# --- the key-account review round ---------------------------------------------------------------------

from pharmacrm.keyaccounts import services  # noqa: E402

from .eval_fixtures import *  # noqa: E402, F403
from .programme_fixtures import *  # noqa: E402, F403


def test_an_open_ended_plan_validity_is_refused_with_what_to_do(users, xiehe, staffed):
    """ERP habit: "valid to 9999-12-31" for no end. The form took it, and after the agreement the account page
    answered 500 for everyone (a date past 9999 in the agreement term)."""
    account = staffed(xiehe)
    today = timezone.localdate()
    with pytest.raises(ValidationError) as refused:
        services.start_plan(users["kam"], account, goals="长期合作", valid_from=today, valid_to=dt.date(9999, 12, 31))
    assert "valid_to" in refused.value.message_dict
    services.start_plan(users["kam"], account, goals="长期合作", valid_from=today)  # no end: leave it empty


def test_evaluate_refuses_a_date_in_the_future(db):
    from django.core.management import CommandError, call_command

    from pharmacrm.keyaccounts.models import EvaluationRun

    with pytest.raises(CommandError):
        call_command("evaluate", "--as-of", "2099-01-01")  # a typo for 2026: a period decades ahead
    assert not EvaluationRun.objects.filter(period="2099H1").exists()


# --- plan items, the customer panel (review round, continued) -----------------------------------------

from pharmacrm.keyaccounts.choices import PlanArea, TeamRole  # noqa: E402
from pharmacrm.keyaccounts.models import TeamMember  # noqa: E402

from .programme_fixtures import approve_plan, item_data  # noqa: E402


def test_a_member_whose_items_were_handed_over_in_a_new_version_can_be_removed(users, xiehe, with_plan):
    account, first = with_plan(xiehe)
    kam = users["kam"]
    second = services.start_plan(kam, account)
    # the expert's item of version 1 is handed to after-sales in version 2 (the fixture's items are all the
    # kam's: the training item is the expert's in both, as if version 1 had been written so)
    first.items.filter(area=PlanArea.TRAINING).update(owner=users["expert"])
    second.items.filter(area=PlanArea.TRAINING).update(owner=users["expert"])
    training = second.items.get(area=PlanArea.TRAINING)
    services.save_item(kam, second, {**item_data(users, PlanArea.TRAINING, owner="aftersales"),
                                     "deadline": training.deadline}, item=training)  # fmt: skip
    approve_plan(users, second)
    assert not second.items.filter(owner=users["expert"]).exists()
    member = TeamMember.objects.get(account=account, user=users["expert"], role=TeamRole.PRODUCT_EXPERT)
    services.remove_member(users["manager"], member)  # refused: "Give this member's open plan items to …"
    assert not TeamMember.objects.filter(pk=member.pk).exists()


def test_a_member_who_stays_in_the_team_in_another_role_gives_up_one_role_without_handing_over(
    users, xiehe, with_plan, make_user
):
    """Taking one of two team roles from a member who owns open items was refused ("give this member's open plan
    items to someone else first"), though they stay in the team and keep delivering them."""
    from pharmacrm.core.roles import Role

    account, plan = with_plan(xiehe)
    both = make_user("support2", Role.SUPPORT, Role.AFTERSALES)
    services.add_member(users["manager"], account, both, TeamRole.TECH_SUPPORT)
    services.add_member(users["manager"], account, both, TeamRole.AFTER_SALES)
    plan.items.filter(area=PlanArea.AFTER_SALES).update(owner=both)  # an open item of the plan in force
    tech = TeamMember.objects.get(account=account, user=both, role=TeamRole.TECH_SUPPORT)

    services.remove_member(users["manager"], tech)

    assert list(TeamMember.objects.filter(account=account, user=both).values_list("role", flat=True)) == [
        TeamRole.AFTER_SALES
    ]
    # the last role still waits for the hand-over
    with pytest.raises(ValidationError):
        services.remove_member(users["manager"], TeamMember.objects.get(account=account, user=both))


def test_the_agreement_does_not_promise_a_cancelled_service(users, xiehe, with_plan):
    import io

    from pypdf import PdfReader

    from pharmacrm.keyaccounts.choices import ItemStatus

    account, plan = with_plan(xiehe)
    kam = users["kam"]
    extra = plan.items.get(area=PlanArea.SUPPLY)
    services.update_progress(kam, extra, status=ItemStatus.CANCELLED, note="客户不再需要")
    today = timezone.localdate()
    agreement = services.generate_agreement(kam, account, start_date=today, end_date=today + dt.timedelta(days=364))
    text = "".join(p.extract_text() for p in PdfReader(io.BytesIO(services.agreement_document(agreement))).pages)
    flat = "".join(text.replace("\x00", "").split())  # pypdf spaces out CJK text with NULs
    assert "".join(extra.title.split()) not in flat, "the cancelled item is listed among the services"


def test_a_cancelled_training_item_does_not_count_as_covering_training(users, xiehe, with_plan):
    from pharmacrm.keyaccounts.choices import ItemStatus

    account, plan = with_plan(xiehe)
    kam = users["kam"]
    services.update_progress(kam, plan.items.get(area=PlanArea.TRAINING), status=ItemStatus.CANCELLED, note="取消")
    draft = services.start_plan(kam, account)  # the next version: its only training item is the cancelled one
    with pytest.raises(ValidationError):
        services.submit_plan(kam, draft)


def test_the_customer_block_shows_the_latest_evaluation_not_the_alphabetically_last(users, xiehe, client_for):
    from decimal import Decimal

    from django.urls import reverse

    from pharmacrm.keyaccounts import evaluation
    from pharmacrm.keyaccounts.models import Score

    model = evaluation.active_model("evaluation")
    # a key account: its first key-account quarter of the year, and the half-year scored three months later
    Score.objects.create(institution=xiehe, kind="evaluation", period="2026Q1", model=model, as_of=dt.date(2026, 1, 1),
                         score=Decimal("85.00"), klass="A", stored_components=[])  # fmt: skip
    Score.objects.create(institution=xiehe, kind="evaluation", period="2026H1", model=model, as_of=dt.date(2026, 4, 1),
                         score=Decimal("55.00"), klass="C", stored_components=[])  # fmt: skip
    page = client_for("analyst").get(reverse("keyaccounts:eval-panel", args=[xiehe.pk]))
    assert page.context["latest"].period == "2026H1", page.context["latest"].period



from pharmacrm.keyaccounts.choices import AgreementStatus, PlanStatus  # noqa: E402


def _pdf():
    from django.core.files.uploadedfile import SimpleUploadedFile

    from .programme_fixtures import tiny_pdf

    return SimpleUploadedFile("signed.pdf", tiny_pdf(), content_type="application/pdf")


# --- 1. a draft agreement of a superseded plan version can still be signed ---------------------------------


def test_an_agreement_of_a_superseded_plan_cannot_be_signed(users, xiehe, with_plan):
    account, first = with_plan(xiehe)
    kam = users["kam"]
    today = timezone.localdate()
    draft = services.generate_agreement(kam, account, start_date=today, end_date=today + dt.timedelta(days=364))
    # the plan changes: version 2 is approved and supersedes version 1, whose services the draft lists
    second = services.start_plan(kam, account)
    item = second.items.get(area=PlanArea.SUPPLY)
    services.save_item(kam, second, {**item_data(users, PlanArea.SUPPLY), "title": "冷链直送 24 小时到货"}, item=item)
    approve_plan(users, second)
    first.refresh_from_db()
    assert first.status == PlanStatus.SUPERSEDED
    # the customer is made to sign services that are no longer in force: refused
    with pytest.raises(ValidationError):
        services.record_signed(kam, draft, signed_date=today, upload=_pdf())


# --- 2. the agreement of a new plan version leaves the old one in force ------------------------------------


def test_signing_the_new_versions_agreement_replaces_the_one_in_force(users, xiehe, with_plan):
    account, first = with_plan(xiehe)
    kam = users["kam"]
    today = timezone.localdate()
    # the agreement of version 1, signed (as the demo's: it starts a few days after the plan's validity)
    start, end = services.default_agreement_term(account)
    old = services.generate_agreement(kam, account, start_date=start + dt.timedelta(days=3), end_date=end)
    services.record_signed(kam, old, signed_date=today, upload=_pdf())
    # version 2 approved; its agreement generated with the term the form proposes, and signed
    approve_plan(users, services.start_plan(kam, account))
    start2, end2 = services.default_agreement_term(account)
    new = services.generate_agreement(kam, account, start_date=start2, end_date=end2)
    services.record_signed(kam, new, signed_date=today, upload=_pdf())
    old.refresh_from_db()
    in_force = account.agreements.filter(status=AgreementStatus.SIGNED).count()
    assert in_force == 1, f"{in_force} agreements in force at once (old: {old.status})"


def test_a_delisted_accounts_items_leave_the_teams_work_and_scorecards(users, xiehe, with_plan, make_proposal, client_for):
    from django.urls import reverse

    from .programme_fixtures import sign_code

    deadline = timezone.localdate() + dt.timedelta(days=3)
    account, plan = with_plan(xiehe, deadline=deadline)
    delist = make_proposal(xiehe, kind="delist")
    services.decide(users["manager"], delist, approve=True, comment="不再合作", otp_code=sign_code(users["manager"]))
    # the customer is no longer served: its items are nobody's work any more …
    page = client_for("kam").get(reverse("keyaccounts:my"))
    assert page.status_code == 200
    # … and do not count against the team's on-time record once their deadline passes
    period = f"{deadline.year}Q{(deadline.month - 1) // 3 + 1}"
    card = next(c for c in services.scorecards(period) if c["user"] == users["kam"])
    still_listed = [i.title for i in page.context["items"]]
    assert (card["items_due"], still_listed) == (0, []), (card["items_due"], still_listed)


def test_items_missed_before_the_delisting_still_count_on_the_past_quarters_scorecards(
    users, xiehe, with_plan, make_proposal
):
    """De-listing rewrote history: the items the team had let pass their deadline in the quarter before no longer
    counted, and that quarter's cards read as if nothing had fallen due."""
    from pharmacrm.keyaccounts.models import KeyAccount, PlanItem

    from .programme_fixtures import sign_code

    account, plan = with_plan(xiehe)
    KeyAccount.objects.filter(pk=account.pk).update(listed_at=timezone.now() - dt.timedelta(days=400))
    period = services.previous_quarter(timezone.localdate())
    start, _end = services.period_bounds(period)
    PlanItem.objects.filter(plan=plan).update(deadline=start + dt.timedelta(days=20))  # missed, all four
    before = next(c for c in services.scorecards(period) if c["user"] == users["kam"])

    delist = make_proposal(xiehe, kind="delist")
    services.decide(
        users["manager"], delist, approve=True, comment="不再合作", otp_code=sign_code(users["manager"])
    )

    after = next(c for c in services.scorecards(period) if c["user"] == users["kam"])
    assert (before["items_due"], before["items_on_time"]) == (4, 0)
    assert (after["items_due"], after["items_on_time"]) == (4, 0)


@pytest.fixture
def identified(purchases, users):
    from pharmacrm.keyaccounts import evaluation
    from pharmacrm.keyaccounts.choices import ModelKind

    from .eval_fixtures import H1_2026

    evaluation.run(ModelKind.CANDIDATE, as_of=H1_2026)
    return purchases


def test_an_influence_post_without_its_version_does_not_wipe_the_kols(users, client_for, identified):
    """An empty POST without the form's version set the KOL count from 6 to 0 (audited, but silently)."""
    from pharmacrm.keyaccounts import influence
    from pharmacrm.keyaccounts.models import MarketInfluence, Score

    huashan = identified["huashan"]
    influence.save_influence(users["analyst"], huashan, {"kol_names": "张三、李四", "kol_count": "6"})
    score = Score.objects.get(kind="candidate", institution=huashan)
    response = client_for("analyst").post(f"/keyaccounts/evaluations/{score.pk}/influence/", {})
    assert response.status_code == 409
    assert MarketInfluence.objects.get(institution=huashan).kol_count == 6
