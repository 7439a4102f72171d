"""Shared data for the evaluation tests (imported by the test modules: no conftest here).

Customers with credit codes, order files in the ERP template's format imported through the real engine
(so scoring reads real monthly rollups), and the API's token clients per role.

The order history (amounts in yuan; "window" = the 12 months before an as-of date):

协和 (3A hospital, 2000 beds, 2 specialties)
  SO-X0  2025-03-01  100 × 1000 = 100,000  due 04-01, paid 03-20         → on time
  SO-X1  2025-08-10  100 × 1000 = 100,000  due 09-10, paid 09-01         → on time
  SO-X2  2026-01-15   50 × 2000 = 100,000  due 02-15, paid 03-01         → late
  SO-X3  2026-05-20  100 ×  500 =  50,000  due 06-20, unpaid             → overdue
华山 (3A hospital, 1500 beds, 5 specialties): two orders a month from 2025-07 to 2026-06, each 40,000,
  due a month later and paid on time (24 orders, 960,000).
长征 (a key account, the same purchases as 华山 under other order numbers)."""

from __future__ import annotations

import datetime as dt

import pytest

from pharmacrm.customers import importer, normalise
from pharmacrm.customers import services as customers
from pharmacrm.customers.models import ImportJob
from pharmacrm.keyaccounts.choices import AccountStatus
from pharmacrm.keyaccounts.models import KeyAccount
from pharmacrm.sales.importer import ORDER_COLUMNS
from tests.api.conftest import api_for  # noqa: F401  (token clients per role)

KEYS = [c.key for c in ORDER_COLUMNS]
H1_2026 = dt.date(2026, 6, 30)  # as of: period 2026H1, window 2025-07 … 2026-06
H2_2025 = dt.date(2025, 12, 31)  # as of: period 2025H2, window 2025-01 … 2025-12
EVALUATION_ROLES = {"admin", "manager", "kam", "rep", "analyst", "auditor"}
RUN_ROLES = {"admin", "manager", "analyst"}
CONFIGURE_ROLES = {"admin", "manager", "analyst"}


@pytest.fixture(autouse=True)
def var_dir_per_test(settings, tmp_path):
    """Import jobs keep their reports under VAR_DIR/imports: one directory per test."""
    settings.VAR_DIR = tmp_path / "var"


# the order-file helpers are the purchases tests' own
from tests.sales.conftest import line, write_csv  # noqa: E402, F401


@pytest.fixture
def import_orders(admin_user, tmp_path):
    """import_orders(rows) → the finished import job (the admin imports, through the real engine)."""
    counter = iter(range(1, 1000))

    def run(rows: list[dict]) -> ImportJob:
        path = write_csv(tmp_path / f"orders-{next(counter)}.csv", rows)
        job = importer.import_file(path, ImportJob.Target.ORDERS, admin_user, mode="good")
        assert job.error_count == 0, job.errors
        return job

    return run


def _hospital(admin, region, name: str, body17: str, **extra):
    return customers.create_institution(admin, {
        "name": name, "kind": "hospital", "grade": "3A", "region": region,
        "credit_code": normalise.make_credit_code(body17), **extra,
    })  # fmt: skip


@pytest.fixture
def huashan(admin_user, shanghai):
    """复旦大学附属华山医院 (Shanghai: outside the rep's territory)."""
    return _hospital(admin_user, shanghai, "复旦大学附属华山医院", "12310000425006117", beds=1500,
                     specialties=["神经外科", "皮肤科", "感染科", "手外科", "神经内科"])  # fmt: skip


@pytest.fixture
def changzheng(admin_user, shanghai):
    """上海长征医院, an active key account (tier stays as it is: the programme decides)."""
    hospital = _hospital(admin_user, shanghai, "上海长征医院", "12310000425006200", beds=1200)
    KeyAccount.objects.create(number="KA-2025-0001", institution=hospital, status=AccountStatus.ACTIVE)
    return hospital


def monthly_orders(prefix: str, customer) -> list[dict]:
    rows = []
    for i in range(12):
        year, month = (2025, 7 + i) if i < 6 else (2026, i - 5)
        for day in (5, 20):
            order_day = dt.date(year, month, day)
            due = order_day + dt.timedelta(days=30)
            rows.append(line(f"{prefix}-{year}{month:02d}{day}", 1, order_day, customer, "P1", 40, "1000",
                             payment_due=due, paid_date=due - dt.timedelta(days=5)))  # fmt: skip
    return rows


def xiehe_orders(xiehe) -> list[dict]:
    return [
        line("SO-X0", 1, "2025-03-01", xiehe, "P1", 100, "1000", payment_due="2025-04-01", paid_date="2025-03-20"),
        line("SO-X1", 1, "2025-08-10", xiehe, "P1", 100, "1000", payment_due="2025-09-10", paid_date="2025-09-01"),
        line("SO-X2", 1, "2026-01-15", xiehe, "P2", 50, "2000", payment_due="2026-02-15", paid_date="2026-03-01"),
        line("SO-X3", 1, "2026-05-20", xiehe, "P3", 100, "500", payment_due="2026-06-20"),
    ]  # fmt: skip


@pytest.fixture
def purchases(import_orders, xiehe, huashan, changzheng):
    """The three customers' order history, imported."""
    import_orders(xiehe_orders(xiehe) + monthly_orders("SO-H", huashan) + monthly_orders("SO-C", changzheng))
    return {"xiehe": xiehe, "huashan": huashan, "changzheng": changzheng}
