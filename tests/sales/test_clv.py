"""Customer lifetime value (客户生命周期价值, seed 000 §8.1): hand-computed on a small set of monthly rollups, the
retention it falls back on, who may see the money figures (page, Customer 360 block, API), the page in each language
and the nightly run's query count."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from pharmacrm.customers import normalise
from pharmacrm.customers import services as customers
from pharmacrm.sales import clv
from pharmacrm.sales.models import ChurnRate, CustomerValue, MonthlyRollup

pytestmark = pytest.mark.django_db

TODAY = dt.date(2026, 12, 5)  # the current month is December; the last complete one November


@pytest.fixture(autouse=True)
def _rates(settings):
    settings.CLV_RETENTION = "0.8"
    settings.CLV_MONTHLY_DISCOUNT = "0.01"


@pytest.fixture
def bought(admin_user, beijing, users):
    """Three Beijing hospitals owned by the rep: 甲 paid 1,000 yuan in each of June–November 2026; 乙 paid 500 in
    November 2024 only; 丙 bought in December 2025 and November 2026, 400 each, and paid 300 of each."""

    def make(name, n):
        return customers.create_institution(admin_user, {
            "name": name, "kind": "hospital", "region": beijing, "owner": users["rep"],
            "credit_code": normalise.make_credit_code(f"1211000040001{n:04d}"),
        })  # fmt: skip

    a, b, c = make("北京甲医院", 1), make("北京乙医院", 2), make("北京丙医院", 3)
    rows = [MonthlyRollup(institution=a, month=dt.date(2026, m, 1), amount_fen=100_000, paid_fen=100_000)
            for m in range(6, 12)]  # fmt: skip
    rows.append(MonthlyRollup(institution=b, month=dt.date(2024, 11, 1), amount_fen=50_000, paid_fen=50_000))
    rows += [MonthlyRollup(institution=c, month=d, amount_fen=40_000, paid_fen=30_000)
             for d in (dt.date(2025, 12, 1), dt.date(2026, 11, 1))]  # fmt: skip
    rows.append(MonthlyRollup(institution=a, month=dt.date(2026, 12, 1), amount_fen=999_999, paid_fen=999_999))  # not yet
    MonthlyRollup.objects.bulk_create(rows)
    return {"a": a, "b": b, "c": c}


def test_lifetime_values_hand_computed(bought):
    assert clv.compute(TODAY) == 3
    a, b, c = (CustomerValue.objects.get(institution=bought[k]) for k in "abc")

    # 甲: 6,000 paid over 6 months since June (tenure 6, buying every month); r = 0.8 (the setting), d = 1 %:
    # Σₜ₌₁..₃₆ (0.8^(1/12) / 1.01)ᵗ = 22.17603… → 1,000 × 22.17603 = 22,176.03 yuan
    assert (a.historic_fen, a.active_months, a.avg_month_fen, a.tenure_months) == (600_000, 6, 100_000, 6)
    assert a.first_month == dt.date(2026, 6, 1) and a.last_month == dt.date(2026, 11, 1)
    assert a.retention == Decimal("0.8") and a.retention_source == "setting"
    assert a.projected_fen == 2_217_603
    # 乙: bought nothing in the last 12 complete months — lapsed, projected at nothing; tenure Nov 2024 – Nov 2026
    assert (b.historic_fen, b.tenure_months, b.projected_fen) == (50_000, 25, 0)
    # 丙: 600 paid over 2 months (300 a month) in a tenure of 12: 300 × 2/12 × 22.17603 = 1,108.80 yuan
    assert (c.historic_fen, c.active_months, c.avg_month_fen, c.tenure_months) == (60_000, 2, 30_000, 12)
    assert c.projected_fen == 110_880


def test_the_company_retention_measured_by_the_churn_watch_comes_before_the_setting(bought):
    ChurnRate.objects.create(kind="year", start=dt.date(2025, 12, 1), end=dt.date(2026, 12, 1), buyers_before=10,
                             retained=6, buyers=8, repeat_buyers=5, computed_on=TODAY)  # fmt: skip
    clv.compute(TODAY)

    a = CustomerValue.objects.get(institution=bought["a"])
    assert a.retention == Decimal("0.6") and a.retention_source == "company"
    assert a.projected_fen == 1_574_535  # 1,000 × Σ (0.6^(1/12) / 1.01)ᵗ = 15.74535…


def test_a_run_replaces_the_last_and_costs_a_fixed_number_of_queries(bought, django_assert_num_queries):
    clv.compute(TODAY)
    MonthlyRollup.objects.filter(institution=bought["b"]).delete()
    # rollups, the evaluation period in force, the latest class scores, the company rate; then the delete, the
    # insert and the audit entry (its head read, the entry, the head moved) in one transaction
    with django_assert_num_queries(11):
        assert clv.compute(TODAY) == 2
    assert not CustomerValue.objects.filter(institution=bought["b"]).exists()


# --- who sees it ----------------------------------------------------------------------------------------------

SEE = {"admin", "manager", "kam", "rep", "analyst", "auditor"}


@pytest.mark.parametrize("role", ["admin", "manager", "kam", "rep", "analyst", "auditor", "agent", "pv", "expert",
                                  "support", "aftersales"])  # fmt: skip
def test_role_matrix_page_block_and_api(role, bought, client_for, api_for):
    clv.compute(TODAY)
    client = client_for(role)
    page = client.get("/sales/clv/", HTTP_ACCEPT_LANGUAGE="en")
    block = client.get(f"/sales/clv/customer/{bought['a'].pk}/", HTTP_ACCEPT_LANGUAGE="en")
    api = api_for(role).get("/api/v1/sales/clv/")
    if role in SEE:
        assert page.status_code == 200 and "北京甲医院" in page.content.decode()
        assert "¥22,176.03" in block.content.decode()
        assert api.status_code == 200
        assert [r["projected"] for r in api.json()["results"]][:1] == ["22176.03"]
    else:
        assert (page.status_code, block.status_code, api.status_code) == (403, 403, 403)


def test_a_rep_sees_only_the_values_of_customers_in_their_scope(bought, client_for, api_for, admin_user, shanghai):
    far = customers.create_institution(admin_user, {"name": "上海某医院", "kind": "hospital", "region": shanghai})
    MonthlyRollup.objects.create(institution=far, month=dt.date(2026, 11, 1), amount_fen=10**9, paid_fen=10**9)
    clv.compute(TODAY)

    ids = {r["institution"] for r in api_for("rep").get("/api/v1/sales/clv/").json()["results"]}
    assert far.pk not in ids and bought["a"].pk in ids
    assert "上海某医院" not in client_for("rep").get("/sales/clv/").content.decode()
    assert "上海某医院" in client_for("manager").get("/sales/clv/").content.decode()
    assert client_for("rep").get(f"/sales/clv/customer/{far.pk}/").status_code == 404


@pytest.mark.parametrize("lang, words", [("zh-hans", "客户生命周期价值"), ("en", "Customer lifetime value"),
                                         ("zh-hant", "客戶生命週期價值")])  # fmt: skip
def test_the_page_in_each_language(lang, words, bought, client_for):
    clv.compute(TODAY)
    page = client_for("manager").get("/sales/clv/", HTTP_ACCEPT_LANGUAGE=lang).content.decode()
    assert words in page


def test_the_excel_export(bought, client_for):
    from io import BytesIO

    from openpyxl import load_workbook

    clv.compute(TODAY)
    response = client_for("analyst").get("/sales/clv/export.xlsx?sort=historic", HTTP_ACCEPT_LANGUAGE="en")
    sheet = load_workbook(BytesIO(response.content)).active
    assert [sheet.cell(r, 1).value for r in (2, 3, 4)] == ["北京甲医院", "北京丙医院", "北京乙医院"]
    assert sheet.cell(2, 11).value == pytest.approx(22176.03)
    assert "filename=\"Customer-lifetime-value-" in response["Content-Disposition"]

    # a customer named like a formula is text in the sheet, never a formula the reader's Excel runs
    from pharmacrm.customers.models import Institution

    Institution.objects.filter(name="北京乙医院").update(name='=HYPERLINK("http://evil.example","点击")')
    response = client_for("analyst").get("/sales/clv/export.xlsx?sort=historic", HTTP_ACCEPT_LANGUAGE="en")
    cell = load_workbook(BytesIO(response.content)).active.cell(4, 1)
    assert (cell.value, cell.data_type) == ('=HYPERLINK("http://evil.example","点击")', "s")
