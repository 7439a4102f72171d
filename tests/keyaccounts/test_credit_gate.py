"""The credit gate of the customer evaluation: a customer owing old overdue debts gets no better class than the gate's
(B by default), whatever its score — QA found a customer owing ¥871k overdue more than 90 days rated A, with A's
discount level and reward programme. The score and its components stay as they are; the class is capped, and every
place that shows the class says why.

华山 buys as in eval_fixtures (24 orders of ¥40,000 from 2025-07 to 2026-06, paid on time: ¥960,000) and owes one more
order, SO-OLD of 2026-01-05 (due 2026-02-04, unpaid: 146 days overdue on 2026-06-30). Hand-computed, as of 2026-06-30
(window 2025-07 … 2026-06), the default model (35/20/20/25, A from 80, B from 60):

  SO-OLD ¥150,000: amount ¥1,110,000 → 100 (35.00); 25 orders → 100 (20.00); no survey → 60 (12.00);
                   credit 70 % × 960/1110 × 100 + 30 % × (100 − 150/1110 × 100) = 86.49 (21.62); score 88.62 → A by
                   score; ¥150,000 overdue more than 90 days is above ¥100,000 → class B.
  SO-OLD ¥100,000: amount ¥1,060,000 → 100; credit 70 % × 960/1060 × 100 + 30 % × (100 − 100/1060 × 100) = 90.57
                   (22.64); score 89.64 → A; ¥100,000 is not above ¥100,000 and 9.43 % not above 20 % → stays A."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from pharmacrm.customers.models import Institution
from pharmacrm.keyaccounts import evaluation
from pharmacrm.keyaccounts.choices import ModelKind
from pharmacrm.keyaccounts.models import Score, ScoringModel

from .eval_fixtures import *  # noqa: F403  (fixtures)
from .eval_fixtures import H1_2026, line

pytestmark = pytest.mark.django_db
D = Decimal
EN = {"HTTP_ACCEPT_LANGUAGE": "en"}
ZH = {"HTTP_ACCEPT_LANGUAGE": "zh-hans"}


@pytest.fixture
def on_30_june(monkeypatch):
    """The product's calendar on 2026-06-30 (the rollups' overdue amounts and the run as of that day)."""
    real = timezone.localdate
    monkeypatch.setattr(timezone, "localdate", lambda value=None, tz=None: H1_2026 if value is None else real(value, tz))


def monthly_orders(prefix: str, customer) -> list[dict]:
    """eval_fixtures' monthly orders (two of ¥40,000 a month, 2025-07 … 2026-06), each paid ten days after it was
    ordered (on time, and no later than 30 June)."""
    rows = []
    for i in range(12):
        year, month = (2025, 7 + i) if i < 6 else (2026, i - 5)
        for day in (5, 20):
            ordered = dt.date(year, month, day)
            rows.append(line(f"{prefix}-{year}{month:02d}{day}", 1, ordered, customer, "P1", 40, "1000",
                             payment_due=ordered + dt.timedelta(days=30),
                             paid_date=ordered + dt.timedelta(days=10)))  # fmt: skip
    return rows


def _old_debt(customer, yuan: str) -> dict:
    return line("SO-OLD", 1, "2026-01-05", customer, "P9", 1, yuan, payment_due="2026-02-04")


def _evaluate(import_orders, huashan, debt: str, **model) -> Score:
    import_orders(monthly_orders("SO-H", huashan) + [_old_debt(huashan, debt)])
    if model:
        evaluation.save_model(_admin(), ModelKind.EVALUATION, {"params": model})
    evaluation.run(ModelKind.EVALUATION, as_of=H1_2026)
    return Score.objects.get(institution=huashan, kind=ModelKind.EVALUATION, period="2026H1")


def _admin():
    from pharmacrm.core.models import User

    return User.objects.get(username="admin")


def _parts(score: Score) -> dict[str, tuple[str, str]]:
    return {c["name"]: (c["value"], c["contribution"]) for c in score.components}


def test_a_high_scorer_owing_old_debts_above_the_gate_is_class_b_with_the_reason(
    on_30_june, import_orders, huashan, users
):
    score = _evaluate(import_orders, huashan, "150000")
    # the score and its components as without a gate: they add up to the score
    assert _parts(score) == {"amount": ("100.00", "35.00"), "frequency": ("100.00", "20.00"),
                             "satisfaction": ("60.00", "12.00"), "credit": ("86.49", "21.62")}  # fmt: skip
    assert score.score == D("88.62") == sum(D(c["contribution"]) for c in score.components)
    assert (score.klass, score.class_before_gate) == ("B", "A")
    assert score.gate == {"reason": "amount", "days": 90, "overdue": "150000.00", "limit": "100000.00",
                          "class_before_gate": "A", "class": "B"}  # fmt: skip
    # B's results, not A's: the discount level, the reward programme and the tier follow the capped class
    assert (score.discount, score.programme) == (D("2.00"), "采购额达标奖")
    assert Institution.objects.get(pk=huashan.pk).tier == "regular"
    from django.utils import translation

    with translation.override("en"):
        assert score.gate_reason == "Class capped at B: ¥150,000.00 overdue more than 90 days (above ¥100,000)."


def test_an_old_debt_not_above_the_amount_nor_the_share_leaves_class_a(on_30_june, import_orders, huashan, users):
    score = _evaluate(import_orders, huashan, "100000")
    assert (score.score, score.klass, score.gate, score.class_before_gate) == (D("89.64"), "A", None, "A")
    assert (score.discount, score.programme) == (D("5.00"), "年度优秀客户奖")
    assert Institution.objects.get(pk=huashan.pk).tier == "vip"


def test_the_share_of_the_windows_purchases_applies_the_gate_too(on_30_june, import_orders, huashan, users):
    """¥150,000 of ¥1,110,000 bought in the window is 13.51 %: above a share of 10 % (the amount set out of reach)."""
    score = _evaluate(import_orders, huashan, "150000", gate_amount=1_000_000, gate_share=10)
    assert (score.score, score.klass) == (D("88.62"), "B")
    assert score.gate == {"reason": "share", "days": 90, "overdue": "150000.00", "share": "10",
                          "purchases": "1110000.00", "class_before_gate": "A", "class": "B"}  # fmt: skip
    from django.utils import translation

    with translation.override("en"):
        assert score.gate_reason == ("Class capped at B: ¥150,000.00 overdue more than 90 days (above 10% of the "
                                     "¥1,110,000 bought in the window).")  # fmt: skip


def test_a_share_not_reached_and_debts_younger_than_the_days_leave_class_a(on_30_june, import_orders, huashan, users):
    assert _evaluate(import_orders, huashan, "150000", gate_amount=1_000_000, gate_share=15).klass == "A"
    # 146 days overdue on 30 June: not more than 150 days
    evaluation.save_model(_admin(), ModelKind.EVALUATION, {"params": {"gate_amount": 100_000, "gate_days": 150}})
    evaluation.run(ModelKind.EVALUATION, as_of=H1_2026)
    assert Score.objects.get(institution=huashan, kind=ModelKind.EVALUATION).klass == "A"


def test_the_gate_switched_off_leaves_the_class_the_score_gives(on_30_june, import_orders, huashan, users):
    score = _evaluate(import_orders, huashan, "150000", gate_class="")
    assert (score.score, score.klass, score.gate) == (D("88.62"), "A", None)
    assert (score.discount, score.programme) == (D("5.00"), "年度优秀客户奖")


def test_a_gate_at_c_caps_at_c_and_the_movement_follows_the_capped_class(on_30_june, import_orders, huashan, users):
    score = _evaluate(import_orders, huashan, "150000", gate_class="C")
    assert (score.klass, score.gate["class_before_gate"], score.discount) == ("C", "A", D("0.00"))


def test_an_evaluation_as_of_a_past_day_reads_the_old_debts_of_that_day(import_orders, huashan, users):
    """Today (the machine's) is after 30 June: the run as of 30 June reads that day's payment state from the lines."""
    score = _evaluate(import_orders, huashan, "150000")
    assert (score.score, score.klass, score.gate["overdue"]) == (D("88.62"), "B", "150000.00")


def test_a_model_saved_before_the_gate_keeps_its_classes_until_switched_on(on_30_june, import_orders, huashan, users):
    """An existing (customised) model has no gate: its results stay as they were; an administrator switches it on."""
    evaluation.active_model(ModelKind.EVALUATION)
    model = ScoringModel.objects.get(kind=ModelKind.EVALUATION, active=True)
    ScoringModel.objects.filter(pk=model.pk).update(
        params={k: v for k, v in model.params.items() if not k.startswith("gate_")}
    )
    score = _evaluate(import_orders, huashan, "150000")
    assert (score.klass, score.gate) == ("A", None)
    evaluation.save_model(_admin(), ModelKind.EVALUATION, {"params": {"gate_class": "B"}})
    evaluation.run(ModelKind.EVALUATION, as_of=H1_2026)
    assert Score.objects.get(institution=huashan, kind=ModelKind.EVALUATION).klass == "B"


def test_the_api_gives_the_capped_class_the_class_before_the_gate_and_the_reason(
    on_30_june, import_orders, huashan, users, api_for
):
    _evaluate(import_orders, huashan, "150000")
    [row] = api_for("analyst").get("/api/v1/evaluations/", {"period": "2026H1"}, **EN).json()["results"]
    assert (row["class"], row["class_before_gate"], row["score"]) == ("B", "A", "88.62")
    assert row["gate"] == {
        "reason": "amount", "class": "B", "days": 90, "overdue_amount": "150000.00", "limit": "100000.00",
        "text": "Class capped at B: ¥150,000.00 overdue more than 90 days (above ¥100,000).",
    }  # fmt: skip
    # the components as before: {name, value, weight, contribution, …} adding up to the score
    assert [c["name"] for c in row["components"]] == ["amount", "frequency", "satisfaction", "credit"]
    assert sum(D(c["contribution"]) for c in row["components"]) == D("88.62")
    assert {"name", "value", "weight", "contribution"} <= set(row["components"][0])
    one = api_for("analyst").get(f"/api/v1/evaluations/{row['id']}/", **EN).json()
    assert (one["class"], one["class_before_gate"], one["gate"]["reason"]) == ("B", "A", "amount")


def test_the_api_says_null_when_the_gate_did_not_cap(on_30_june, import_orders, huashan, users, api_for):
    _evaluate(import_orders, huashan, "100000")
    [row] = api_for("analyst").get("/api/v1/evaluations/", {"period": "2026H1"}).json()["results"]
    assert (row["class"], row["class_before_gate"], row["gate"]) == ("A", "A", None)


@pytest.mark.parametrize("headers", [EN, ZH], ids=["en", "zh-hans"])
def test_the_results_page_the_drill_down_and_the_customer_panel_show_why(
    on_30_june, import_orders, huashan, users, client_for, headers
):
    score = _evaluate(import_orders, huashan, "150000")
    c = client_for("analyst")
    reason = c.get(f"/keyaccounts/evaluations/{score.pk}/", **headers)
    assert reason.status_code == 200
    with_reason = {
        "results": c.get("/keyaccounts/evaluations/", {"period": "2026H1", "klass": "B"}, **headers),
        "drill-down": reason,
        "customer 360": c.get(f"/keyaccounts/evaluations/customer/{huashan.pk}/", **headers),
    }
    from django.utils import translation

    with translation.override(headers["HTTP_ACCEPT_LANGUAGE"]):
        expected = evaluation.gate_reason(score.gate)
    for page, response in with_reason.items():
        html = response.content.decode()
        assert response.status_code == 200, page
        assert expected in html and "¥150,000.00" in html and "¥100,000" in html, page
    if headers is EN:
        assert "Class capped at B: ¥150,000.00 overdue more than 90 days (above ¥100,000)." in with_reason["drill-down"].content.decode()


def test_the_gate_settings_are_checked_at_their_fields(client_for, users):
    c = client_for("analyst")
    url = "/keyaccounts/models/evaluation/"
    form = c.get(url).context["form"]
    data = {name: form[name].value() for name in form.fields if form[name].value() is not None}
    assert (data["param_gate_class"], data["param_gate_days"], data["param_gate_amount"], data["param_gate_share"]) == (
        "B", 90, 100000, 20)
    sent = {k: v for k, v in data.items() if v is not False}
    response = c.post(url, sent | {"param_gate_days": "0", "param_gate_share": "120%", "param_gate_amount": "¥-5"}, **EN)
    assert response.status_code == 400
    errors = response.context["form"].errors
    assert errors["param_gate_days"] == ["Credit gate: days overdue must be a whole number of days from 1 to 3650."]
    assert errors["param_gate_share"] == ["Credit gate: share of purchases (%) must be a number from 0 to 100."]
    assert "Credit gate: amount (yuan)" in errors["param_gate_amount"][0]
    assert ScoringModel.objects.filter(kind=ModelKind.EVALUATION).count() == 1
    # typed as the neighbouring fields are: ¥200,000 and 15%; a new version, audited as model changes are
    response = c.post(url, sent | {"param_gate_class": "C", "param_gate_days": "６０", "param_gate_amount": "¥200,000",
                                   "param_gate_share": "15%"})  # fmt: skip
    assert response.status_code == 302, response.context["form"].errors
    model = ScoringModel.objects.get(kind=ModelKind.EVALUATION, active=True)
    assert model.version == 2
    assert {k: model.params[k] for k in ("gate_class", "gate_days", "gate_amount", "gate_share")} == {
        "gate_class": "C", "gate_days": 60, "gate_amount": 200000, "gate_share": 15}
    from pharmacrm.core.models import AuditEntry

    entry = AuditEntry.objects.filter(object_type="keyaccounts.scoringmodel").latest("id")
    assert "gate_class" in str(entry.changes)


def test_the_api_checks_the_gate_settings(users, api_for):
    api = api_for("analyst")
    url = "/api/v1/scoring-models/evaluation/"
    assert api.get(url).json()["params"]["gate_class"] == "B"
    bad = api.put(url, {"params": {"gate_class": "A", "gate_days": 0}, "version": 1}, format="json", **EN)
    assert bad.status_code == 400
    text = str(bad.json())
    assert "The credit gate caps the class at B, C or D, or is off." in text
    assert "Credit gate: days overdue must be a whole number of days from 1 to 3650." in text
    ok = api.put(url, {"params": {"gate_class": "", "gate_amount": "¥50,000"}, "version": 1}, format="json")
    assert ok.status_code == 200, ok.content
    assert (ok.json()["params"]["gate_class"], ok.json()["params"]["gate_amount"]) == ("", 50000)


def test_the_gate_costs_no_query_per_customer(on_30_june, import_orders, huashan, changzheng, xiehe, users, api_for):
    """One query for the old debts of every customer (the open items, not the order history), whatever their
    number; the API none per capped row."""
    import_orders(monthly_orders("SO-H", huashan) + monthly_orders("SO-C", changzheng) + [
        _old_debt(huashan, "150000"),
        line("SO-OLD2", 1, "2026-01-05", changzheng, "P9", 1, "150000", payment_due="2026-02-04"),
        line("SO-X", 1, "2026-01-05", xiehe, "P9", 1, "150000", payment_due="2026-02-04")])  # fmt: skip
    evaluation.run(ModelKind.EVALUATION, as_of=H1_2026)  # the period's first run, tiers changed
    with CaptureQueriesContext(connection) as gated:
        evaluation.run(ModelKind.EVALUATION, as_of=H1_2026)
    assert Score.objects.filter(kind=ModelKind.EVALUATION, klass="B", gate__isnull=False).count() == 2  # 华山, 长征
    lines = [q["sql"] for q in gated.captured_queries if "sales_orderline" in q["sql"]]
    assert len(lines) == 1 and '"outstanding_fen" > 0' in lines[0]
    evaluation.save_model(_admin(), ModelKind.EVALUATION, {"params": {"gate_class": ""}})
    evaluation.run(ModelKind.EVALUATION, as_of=H1_2026)  # the classes back to A (tiers changed)
    with CaptureQueriesContext(connection) as ungated:
        evaluation.run(ModelKind.EVALUATION, as_of=H1_2026)
    assert len(gated) == len(ungated) + 1
    evaluation.save_model(_admin(), ModelKind.EVALUATION, {"params": {"gate_class": "B"}}, version=2)
    evaluation.run(ModelKind.EVALUATION, as_of=H1_2026)
    api = api_for("analyst")
    api.get("/api/v1/evaluations/", {"period": "2026H1"})  # the token's first use, noted once
    with CaptureQueriesContext(connection) as capped:
        assert len(api.get("/api/v1/evaluations/", {"period": "2026H1"}).json()["results"]) == 3
    Score.objects.update(gate=None)
    with CaptureQueriesContext(connection) as uncapped:
        api.get("/api/v1/evaluations/", {"period": "2026H1"})
    assert len(capped) == len(uncapped)


def test_the_shipped_model_has_the_gate_on_at_b():
    model = evaluation.active_model(ModelKind.EVALUATION)
    assert {k: model.params[k] for k in ("gate_class", "gate_days", "gate_amount", "gate_share")} == {
        "gate_class": "B", "gate_days": 90, "gate_amount": 100000, "gate_share": 20}
    assert "gate_class" not in evaluation.active_model(ModelKind.CANDIDATE).params


# --- the incentives API and a key account's quarterly evaluations say why, as the results page ---------------------

LANGUAGES = {"en": "Class capped at B: ¥150,000.00 overdue more than 90 days (above ¥100,000).",
             "zh-hans": "因逾期 90 天以上欠款 ¥150,000.00（超过 ¥100,000），评级上限为 B。",
             "zh-hant": "因逾期 90 天以上欠款 ¥150,000.00（超過 ¥100,000），評級上限為 B。"}  # fmt: skip


@pytest.mark.parametrize("lang", list(LANGUAGES))
def test_the_incentives_api_gives_the_class_before_the_gate_and_the_reason(
    on_30_june, import_orders, huashan, users, api_for, lang
):
    """The discount level and reward programme of class B, not A's: the API said "class": "B" without saying that the
    score gives A, nor why."""
    score = _evaluate(import_orders, huashan, "150000")
    [row] = api_for("analyst", lang=lang).get("/api/v1/keyaccounts/incentives/", {"period": "2026H1"}).json()["results"]
    assert (row["class"], row["class_before_gate"], row["discount"], row["programme"]) == ("B", "A", "2.00", "采购额达标奖")
    assert row["gate"] == {"reason": "amount", "class": "B", "days": 90, "overdue_amount": "150000.00",
                           "limit": "100000.00", "text": LANGUAGES[lang]}  # fmt: skip
    one = api_for("analyst", lang=lang).get(f"/api/v1/keyaccounts/incentives/{score.pk}/").json()
    assert (one["class"], one["class_before_gate"], one["gate"]["text"]) == ("B", "A", LANGUAGES[lang])


def test_the_incentives_api_says_null_when_the_gate_did_not_cap(on_30_june, import_orders, huashan, users, api_for):
    _evaluate(import_orders, huashan, "100000")
    [row] = api_for("analyst").get("/api/v1/keyaccounts/incentives/", {"period": "2026H1"}).json()["results"]
    assert (row["class"], row["class_before_gate"], row["gate"], row["discount"]) == ("A", "A", None, "5.00")


@pytest.fixture
def capped_quarter(import_orders, changzheng, users):
    """长征, a key account, owes SO-OLD: its quarterly customer evaluation of 2026Q2 (as of 30 June, the machine's
    today being later) is capped at B (A by its score), beside its service evaluation of the quarter."""
    from pharmacrm.keyaccounts import services
    from pharmacrm.keyaccounts.models import KeyAccount

    import_orders(monthly_orders("SO-C", changzheng) + [_old_debt(changzheng, "150000")])
    evaluation.run(ModelKind.EVALUATION, as_of=H1_2026, key_accounts_only=True)
    score = Score.objects.get(institution=changzheng, kind=ModelKind.EVALUATION, period="2026Q2")
    assert (score.klass, score.class_before_gate) == ("B", "A")
    listed = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)  # served the whole quarter
    KeyAccount.objects.filter(institution=changzheng).update(listed_at=listed)
    account = KeyAccount.objects.get(institution=changzheng)
    services.review_account(account, "2026Q2")
    return account, score


@pytest.mark.parametrize("lang", list(LANGUAGES))
def test_a_key_accounts_quarterly_evaluation_shows_the_capped_class_and_why(capped_quarter, client_for, lang):
    import re

    from django.urls import reverse

    account, score = capped_quarter
    page = client_for("manager").get(reverse("keyaccounts:account", args=[account.pk]), HTTP_ACCEPT_LANGUAGE=lang)
    assert page.status_code == 200
    html = page.content.decode()
    review = re.search(r'<details class="subform account-review" data-period="2026Q2".*?</details>', html, re.S).group(0)
    words = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", review))
    assert LANGUAGES[lang] in words
    gives = {"en": "score gives A", "zh-hans": "得分为 A 类", "zh-hant": "得分為 A 類"}[lang]
    assert gives in words and f'href="{reverse("keyaccounts:score", args=[score.pk])}"' in review
    assert 'class="klass klass-B"' in review


def test_a_key_accounts_quarterly_evaluation_shows_no_class_to_a_reader_of_no_evaluations(capped_quarter, client_for):
    from django.urls import reverse

    account, _score = capped_quarter
    page = client_for("agent").get(reverse("keyaccounts:account", args=[account.pk]), **EN)
    assert page.status_code == 200
    html = page.content.decode()
    assert 'data-period="2026Q2"' in html  # the service evaluation itself
    assert "account-review-class" not in html and "Class capped" not in html
