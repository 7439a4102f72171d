"""Session 21 (evaluation and key-account programme): a scoring model changed in part through the API keeps
what was not sent; a merged customer leaves the lists of the periods in force; an agreement whose service
standard is long is generated."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from pharmacrm.customers import services as customers
from pharmacrm.keyaccounts import evaluation, services
from pharmacrm.keyaccounts.choices import ModelKind
from pharmacrm.keyaccounts.models import Score

from .eval_fixtures import *  # noqa: F403  (fixtures)
from .eval_fixtures import H1_2026, H2_2025
from .programme_fixtures import *  # noqa: F403  (fixtures)
from .programme_fixtures import sign_code

pytestmark = pytest.mark.django_db
EN = {"HTTP_ACCEPT_LANGUAGE": "en"}
MODEL_URL = "/api/v1/scoring-models/evaluation/"


# --- 1. a model changed in part keeps what was not sent -------------------------------------------------------


def test_changing_one_classs_discount_keeps_the_other_results(users, api_client):
    """A client raising class A's discount to 6 % sent {"benefits": {"A": {"discount": 6}}}: the new version had
    no tier or reward programme for A and no results at all for B, C and D — D's improvement actions and every
    tier change were silently switched off."""
    api = api_client("analyst")
    response = api.put(MODEL_URL, {"benefits": {"A": {"discount": 6}}, "version": 1}, format="json")

    assert response.status_code == 200, response.json()
    benefits = response.json()["benefits"]
    assert benefits["A"] == {"tier": "vip", "discount": 6, "programme": "年度优秀客户奖", "action": False}
    assert benefits["D"] == {"tier": "regular", "discount": 0, "programme": "", "action": True}
    assert benefits["B"]["programme"] == "采购额达标奖"


def test_changing_one_weight_or_threshold_keeps_the_others(users, api_client):
    api = api_client("analyst")
    response = api.put(MODEL_URL, {"weights": {"amount": 45}, "thresholds": {"A": 85}, "version": 1}, format="json")

    assert response.status_code == 200, response.json()
    saved = response.json()
    assert saved["weights"] == {"amount": 45, "frequency": 20, "satisfaction": 20, "credit": 25}
    assert saved["thresholds"] == {"A": 85, "B": 60, "C": 40}
    # a weight of 0 still leaves a measure out
    response = api.put(MODEL_URL, {"weights": {"satisfaction": 0}, "version": 2}, format="json")
    assert response.status_code == 200 and "satisfaction" not in response.json()["shares"]


# --- 2. a merged customer leaves the lists of the periods in force ----------------------------------------------


def test_a_merged_customer_leaves_the_results_and_the_candidate_list(purchases, users, admin_user, client_for, api_client):
    """协和 was merged into 华山 (a duplicate record): it stayed in class D of the half-year's results and ranked on
    the candidate list, its "Propose" refused as merged, until the next full run of the period — for a half-year,
    up to six months later."""
    xiehe, huashan = purchases["xiehe"], purchases["huashan"]
    evaluation.run(ModelKind.EVALUATION, as_of=H2_2025)
    evaluation.run(ModelKind.EVALUATION, as_of=H1_2026)
    evaluation.run(ModelKind.CANDIDATE, as_of=H1_2026)
    assert Score.objects.filter(institution=xiehe, period__in=["2026H1", "2026-06"]).count() == 2

    customers.merge(admin_user, huashan, xiehe)

    results = client_for("analyst").get("/keyaccounts/evaluations/?period=2026H1&klass=D", **EN).content.decode()
    candidates = client_for("analyst").get("/keyaccounts/candidates/?period=2026-06", **EN).content.decode()
    assert xiehe.name not in results and xiehe.name not in candidates
    listed = api_client("analyst").get("/api/v1/evaluations/?period=2026H1").json()["results"]
    assert [row["customer"] for row in listed if row["customer"] == xiehe.pk] == []
    # the half-year before keeps its history
    assert list(Score.objects.filter(institution=xiehe).values_list("period", flat=True)) == ["2025H2"]


# --- 3. an agreement whose service standard is long -------------------------------------------------------------


def _pdf_text(data: bytes) -> str:
    import io

    from pypdf import PdfReader

    return "".join(page.extract_text() for page in PdfReader(io.BytesIO(data)).pages).replace("\x00", "")


def test_an_agreement_with_a_long_service_standard_is_generated_with_every_word(users, xiehe, with_plan):
    """A standard of a page and more (an SOP pasted in) made the items table's row taller than a page: generating
    the agreement failed with a server error, and the account could get no agreement at all."""
    from pharmacrm.keyaccounts.models import PlanItem

    account, plan = with_plan(xiehe)
    item = PlanItem.objects.filter(plan=plan).order_by("id").first()
    PlanItem.objects.filter(pk=item.pk).update(standard="按照标准操作规程执行并记录结果，" * 200 + "违约责任条款END")
    today = timezone.localdate()

    agreement = services.generate_agreement(users["kam"], account, start_date=today, end_date=today + dt.timedelta(days=365))

    text = _pdf_text(services.agreement_document(agreement)).replace("\n", "")
    assert "Service standards in full" in text and "See note 1 below" in text
    assert "违约责任条款END" in text and "48 小时内响应" in text  # the long one in full, the short ones in the table


# --- 4. a plan submitted for review is announced to who may review it --------------------------------------------


def test_a_submitted_plan_is_announced_only_to_the_leaders_who_may_review_it(users, xiehe, staffed, manager2):
    """The manager who wrote and submitted a plan was told "Service plan for review" about it, opened it and read
    that they may not review it; so was a manager owning one of its items."""
    from pharmacrm.keyaccounts.choices import PlanArea
    from pharmacrm.notify.models import Notification

    from .programme_fixtures import item_data

    account = staffed(xiehe)
    manager = users["manager"]
    plan = services.start_plan(manager, account, goals="保障供应")
    for area in (PlanArea.SUPPLY, PlanArea.TECH_SUPPORT, PlanArea.AFTER_SALES, PlanArea.TRAINING):
        services.save_item(manager, plan, item_data(users, area))
    Notification.objects.all().delete()

    services.submit_plan(manager, plan)

    told = set(Notification.objects.filter(kind="keyaccounts.plan").values_list("recipient__username", flat=True))
    assert told == {"manager2"}
    assert services.may_decide_plan(manager2, plan) and not services.may_decide_plan(manager, plan)


# --- 5. listing and de-listing say at once who is a candidate -------------------------------------------------


def test_a_customer_listed_or_delisted_is_no_candidate_or_a_candidate_again_at_once(
    purchases, users, make_proposal, client_for, api_client
):
    """华山 (83.05, threshold 70) was approved as a key account: until next month's run it stayed on "Only
    candidates above the threshold" with both badges "candidate" and "already a key account", and the API said
    candidate: true. De-listed, it was no candidate for the rest of the month."""
    huashan = purchases["huashan"]
    evaluation.run(ModelKind.CANDIDATE, as_of=H1_2026)
    url = "/keyaccounts/candidates/?period=2026-06&only=on"

    def candidates() -> tuple[bool, bool]:
        page = huashan.name in client_for("analyst").get(url, **EN).content.decode()
        rows = api_client("analyst").get(f"/api/v1/keyaccounts/candidates/?period=2026-06&customer={huashan.pk}")
        return page, rows.json()["results"][0]["candidate"]

    assert candidates() == (True, True)
    proposal = services.decide(users["manager"], make_proposal(huashan), approve=True, comment="同意",
                               otp_code=sign_code(users["manager"]))  # fmt: skip
    assert candidates() == (False, False)

    delisting = make_proposal(huashan, kind="delist")
    services.decide(users["manager"], delisting, approve=True, comment="同意", otp_code=sign_code(users["manager"]))
    assert proposal.account.pk and candidates() == (True, True)


# --- 6. an account's first key-account quarter moves from its half-year -------------------------------------------


def test_an_account_listed_since_the_last_quarter_moves_from_its_half_year_not_new(purchases, users, staffed, api_client):
    """Only the very first key-account quarter moved from the half-year before: an account listed later was shown
    as "new" in its first quarter, though its half-year class was known (协和 D in 2026H1)."""
    xiehe, huashan, changzheng = purchases["xiehe"], purchases["huashan"], purchases["changzheng"]
    evaluation.run(ModelKind.EVALUATION, as_of=H1_2026)  # 2026H1: 协和 D, 华山 A
    half = {s.institution_id: s for s in Score.objects.filter(period="2026H1")}
    evaluation.run(ModelKind.EVALUATION, as_of=dt.date(2026, 9, 30), key_accounts_only=True)  # 2026Q3: 长征 only
    evaluation.run(ModelKind.EVALUATION, as_of=dt.date(2026, 12, 31), key_accounts_only=True)  # 2026Q4: 长征 only
    staffed(xiehe)

    evaluation.run(ModelKind.EVALUATION, as_of=dt.date(2026, 12, 31), key_accounts_only=True)  # 2026Q4 again

    def previous(customer, period):
        return Score.objects.filter(institution=customer, period=period).values_list("previous_klass", "previous_score").get()

    assert previous(xiehe, "2026Q4") == ("D", half[xiehe.pk].score)
    q3 = Score.objects.get(institution=changzheng, period="2026Q3")
    assert previous(changzheng, "2026Q4") == (q3.klass, q3.score)  # the others move from the quarter before
    rows = api_client("analyst").get(f"/api/v1/evaluations/?period=2026Q4&customer={xiehe.pk}").json()["results"]
    assert rows[0]["previous_class"] == "D"

    # the first run of a quarter alike
    staffed(huashan)
    evaluation.run(ModelKind.EVALUATION, as_of=dt.date(2027, 3, 31), key_accounts_only=True)  # 2027Q1
    assert previous(huashan, "2027Q1") == ("A", half[huashan.pk].score)


# --- 7. a proposal closed by leadership is told to its proposer ------------------------------------------------


def test_a_proposal_leadership_closes_is_told_to_the_proposer(users, xiehe, make_proposal):
    """Once a proposal waits for leadership only leadership may close it; the analyst who proposed it was not
    told — it vanished from their inbox as withdrawn, while a decision is always told."""
    from django.utils import translation

    from pharmacrm.notify.models import Notification

    proposal = make_proposal(xiehe)
    Notification.objects.all().delete()

    services.withdraw(users["manager"], proposal)

    [note] = Notification.objects.filter(recipient=users["analyst"])
    with translation.override("en"):
        assert note.shown_title == f"Key-account proposal {proposal.number} was withdrawn by {users['manager']}"
    assert note.url.endswith(f"/keyaccounts/proposals/{proposal.pk}/")
    # the proposer withdrawing their own is told nothing
    own = make_proposal(xiehe, submitted=False)
    services.withdraw(users["analyst"], own)
    assert Notification.objects.filter(recipient=users["analyst"]).count() == 1


# --- 8. a scorecard of the period running counts the items that fell due -------------------------------------------


def test_a_scorecard_of_the_quarter_running_does_not_count_items_not_due_yet_as_missed(users, xiehe, with_plan):
    """The member's card for this quarter (or this year) counted every item due by the end of the period: four
    items due at the end of the quarter, one done, read "1 of 4 on time" weeks before the others were due."""
    from pharmacrm.keyaccounts.models import PlanItem

    account, plan = with_plan(xiehe)
    today = timezone.localdate()
    period = f"{today.year}Q{(today.month - 1) // 3 + 1}"
    PlanItem.objects.filter(plan=plan).update(deadline=services.period_bounds(period, ended=False)[1])
    first = PlanItem.objects.filter(plan=plan).order_by("id").first()
    services.update_progress(users["kam"], first, status="done")

    card = next(c for c in services.scorecards(period) if c["user"] == users["kam"])

    assert (card["items_due"], card["items_on_time"]) == (1, 1)


# --- 9. the API says which key-account evaluation measures had no data ---------------------------------------------


def test_the_api_says_which_measures_of_a_key_account_evaluation_had_no_data(users, xiehe, with_plan, api_client):
    """A quarter without surveys or tickets scores those measures with the neutral default, and the page says
    "(default: no data)"; the API gave the same 60 with nothing to tell it from a real satisfaction of 60."""
    from pharmacrm.keyaccounts.models import KeyAccount

    account, _plan = with_plan(xiehe)
    KeyAccount.objects.filter(pk=account.pk).update(listed_at=timezone.now() - dt.timedelta(days=400))
    period = services.previous_quarter(timezone.localdate())

    response = api_client("kam").post("/api/v1/keyaccounts/account-reviews/run/",
                                      {"account": account.pk, "period": period}, format="json")  # fmt: skip

    assert response.status_code == 200, response.json()
    parts = {c["name"]: c for c in response.json()["components"]}
    assert parts["satisfaction"]["default"] is True and parts["satisfaction"]["value"] == "60.00"
    assert all(c["default"] for c in parts.values() if c["name"] != "plan")


# --- 10. the candidate list states the threshold its scores were flagged with --------------------------------------


def test_the_candidate_list_states_the_threshold_of_its_period_not_a_later_model(purchases, users, client_for):
    """The threshold was raised from 70 to 90 after this month's run: the list said "a score of 90 or more … is a
    candidate" above 华山 (83.05), still marked candidate by the run's 70."""
    evaluation.run(ModelKind.CANDIDATE, as_of=H1_2026)
    evaluation.save_model(users["analyst"], ModelKind.CANDIDATE, {"thresholds": {"candidate": 90}})

    page = client_for("analyst").get("/keyaccounts/candidates/?period=2026-06", **EN)

    assert page.context["threshold"] == 70
    assert "A customer with a score of 70 or more" in page.content.decode()
