"""Fixtures for purchases: customers with credit codes, order files in the template's format, imports
through the real engine, and the API's token clients per role."""

from __future__ import annotations

import csv
import datetime as dt
from pathlib import Path

import pytest
from django.utils import timezone

from pharmacrm.customers import importer, normalise
from pharmacrm.customers import services as customers
from pharmacrm.customers.models import ImportJob
from pharmacrm.sales.importer import ORDER_COLUMNS, _hashed_values, row_hash
from pharmacrm.sales.models import MonthlyRollup, OrderLine, ProductCode
from pharmacrm.servicedesk.models import Product
from tests.api.conftest import anon, api_for  # noqa: F401  (token clients per role)

from .pipeline_world import opportunities, pipeline_world  # noqa: F401  (the sales pipeline tests' world)

KEYS = [c.key for c in ORDER_COLUMNS]
HUASHAN_CODE = normalise.make_credit_code("12310000425006117")


@pytest.fixture(autouse=True)
def _var_dir(settings, tmp_path):
    """Import jobs keep their reports under VAR_DIR/imports: one directory per test."""
    settings.VAR_DIR = tmp_path / "var"


@pytest.fixture
def huashan(admin_user, shanghai):
    """复旦大学附属华山医院 (Shanghai: outside the rep's territory), with a credit code."""
    return customers.create_institution(
        admin_user,
        {
            "name": "复旦大学附属华山医院",
            "kind": "hospital",
            "grade": "3A",
            "region": shanghai,
            "credit_code": HUASHAN_CODE,
        },
    )


def line(order: str, n: int, day: str | dt.date, customer, product: str, qty, price, **extra) -> dict:
    """One row of an order file; `customer` is an institution (its credit code is used) or a credit code."""
    code = customer if isinstance(customer, str) else customer.credit_code
    row = {"order_number": order, "line_number": str(n), "order_date": str(day), "credit_code": code or "",
           "product_code": product, "quantity": str(qty), "unit_price": str(price)}  # fmt: skip
    row.update({k: str(v) for k, v in extra.items()})
    return row


def write_csv(path: Path, rows: list[dict]) -> Path:
    """An order file with the template's Chinese headers."""
    with open(path, "w", encoding="utf-8-sig", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(importer.template_headers(ImportJob.Target.ORDERS))
        for row in rows:
            writer.writerow([row.get(k, "") for k in KEYS])
    return path


@pytest.fixture
def order_file(tmp_path):
    """order_file(rows, name="orders.csv") → the path of a CSV order file."""
    counter = iter(range(1, 1000))

    def make(rows: list[dict], name: str | None = None) -> Path:
        return write_csv(tmp_path / (name or f"orders-{next(counter)}.csv"), rows)

    return make


@pytest.fixture
def run_import(admin_user, order_file):
    """run_import(rows, mode="good", dry_run=False) → the finished ImportJob (the admin imports)."""

    def run(rows: list[dict], mode: str = "good", dry_run: bool = False, user=None) -> ImportJob:
        path = order_file(rows)
        return importer.import_file(
            path, ImportJob.Target.ORDERS, user or admin_user, mode=mode, dry_run=dry_run
        )

    return run


def tables() -> dict:
    """Everything the import writes, for before/after comparisons."""
    return {
        "lines": list(OrderLine.objects.order_by("order_number", "line_number").values()),
        "rollups": list(MonthlyRollup.objects.order_by("institution_id", "month").values()),
        "codes": list(ProductCode.objects.order_by("code").values()),
    }


def today_minus(days: int) -> dt.date:
    from django.utils import timezone

    return timezone.localdate() - dt.timedelta(days=days)


@pytest.fixture
def refused_order_number(db):
    """The database itself refuses any line of order BOOM (a trigger): a real database error in the middle of
    an import, after the chunks before it were committed."""
    from django.db import connection

    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                "CREATE FUNCTION refuse_boom() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                "IF NEW.order_number = 'BOOM' THEN RAISE EXCEPTION 'refused'; END IF; RETURN NEW; END $$"
            )
            cursor.execute(
                "CREATE TRIGGER refuse_boom BEFORE INSERT ON sales_orderline FOR EACH ROW EXECUTE FUNCTION refuse_boom()"
            )
        else:
            cursor.execute(
                "CREATE TEMP TRIGGER refuse_boom BEFORE INSERT ON sales_orderline WHEN NEW.order_number = 'BOOM' "
                "BEGIN SELECT RAISE(ABORT, 'refused'); END"
            )
    yield "BOOM"
    if connection.vendor == "postgresql":  # a test with real transactions keeps its DDL: taken away again
        with connection.cursor() as cursor:
            cursor.execute("DROP TRIGGER IF EXISTS refuse_boom ON sales_orderline")
            cursor.execute("DROP FUNCTION IF EXISTS refuse_boom()")


@pytest.fixture
def history(xiehe, huashan):
    """A file with what an ERP history holds: paid, late, part-paid and open lines, a return, a line without a due
    date, an approval number, and rows the import refuses (an unknown customer, a bad date, a duplicate line, one
    order naming two customers)."""
    Product.objects.create(brand_name="安心宁", generic_name="盐酸氨氯地平片", approval_number="国药准字H20249871")
    d = today_minus
    return [
        line("H-1", 1, d(400), xiehe, "YP1001", 10, "32.50", payment_due=d(340), paid_date=d(350),
             approval_number="国药准字H20249871", batch_number="A1"),  # fmt: skip
        line("H-1", 2, d(400), xiehe, "YP1002", 5, "20.5", payment_due=d(340), paid_date=d(300)),
        line("H-2", 1, d(200), xiehe, "YP1001", 3, "32.5", payment_due=d(140), paid_date=d(150), paid_amount="50"),
        line("H-3", 1, d(90), huashan, "YP1003", 2, "250", payment_due=d(30)),
        line("H-3", 2, d(90), huashan, "YP1001", 1, "32.50"),  # no due date: the default payment term
        line("H-4", 1, d(60), huashan, "YP1003", "-1", "250", amount="-250", paid_date=d(50), paid_amount="-250"),
        line("H-5", 1, d(10), xiehe, "YP9999", 7, "1.2345", batch_number="Z9"),  # a code the catalogue lacks
        line("H-6", 1, d(20), "91110000000000000X", "YP1001", 1, "10"),  # unknown customer
        line("H-7", 1, "2025-02-30", xiehe, "YP1001", 1, "10"),  # no such day
        line("H-1", 2, d(400), xiehe, "YP1002", 5, "20.5"),  # the same order line again
        line("H-3", 3, d(90), xiehe, "YP1001", 1, "10"),  # order H-3 is 华山's
        line("H-8", 1, d(5), xiehe, "YP1002", "0.5", "99.99", paid_date=d(1)),
    ]


# --- orders split between customers or order dates (sales.splits) ------------------------------------------------


def split_before_session_56(number: str, other: str, *, minutes_ago: int = 0) -> None:
    """Lines of order `other` become lines of order `number` (another customer's), fingerprinted as their import did:
    what the race stored, imported `minutes_ago`."""
    for stored in OrderLine.objects.filter(order_number=other).values():
        stored["order_number"] = number
        OrderLine.objects.filter(pk=stored["id"]).update(
            order_number=number, row_hash=row_hash(_hashed_values(stored, stored["institution_id"])),
            imported_at=timezone.now() - dt.timedelta(minutes=minutes_ago),
        )  # fmt: skip


@pytest.fixture
def dongcheng(admin_user, beijing):
    """A second customer in Beijing (the rep's territory)."""
    return customers.create_institution(admin_user, {
        "name": "北京市东城区社区卫生服务中心", "kind": "community", "region": beijing,
        "credit_code": normalise.make_credit_code("12110101MB0000001"),
    })  # fmt: skip


@pytest.fixture
def planted(run_import, xiehe, huashan, dongcheng):
    """SO-1: lines 1 and 2 for 协和 (imported an hour ago, ¥250.00), line 3 for 华山 (imported since, ¥100.00) — 华山 in
    Shanghai, outside the rep's territory. SO-3: 协和's lines 1 and 2 dated 31 March (an hour ago), line 3 dated 1
    April (since). SO-5: 协和 and 东城, both in Beijing. SO-2: 协和's alone, not split."""
    rows = [
        line("SO-1", 1, "2026-03-05", xiehe, "P1", 2, "100"), line("SO-1", 2, "2026-03-05", xiehe, "P2", 1, "50"),
        line("SO-X", 3, "2026-03-05", huashan, "P1", 1, "100"), line("SO-2", 1, "2026-03-06", xiehe, "P1", 1, "10"),
        line("SO-3", 1, "2026-03-31", xiehe, "P1", 2, "100"), line("SO-3", 2, "2026-03-31", xiehe, "P2", 1, "50"),
        line("SO-Y", 3, "2026-04-01", xiehe, "P1", 1, "100"),
        line("SO-5", 1, "2026-05-10", xiehe, "P1", 1, "20"), line("SO-Z", 2, "2026-05-10", dongcheng, "P1", 1, "30"),
    ]  # fmt: skip
    assert run_import(rows).error_count == 0
    OrderLine.objects.filter(order_number__in=["SO-1", "SO-3", "SO-5"]).update(
        imported_at=timezone.now() - dt.timedelta(hours=1)
    )
    for number, other in (("SO-1", "SO-X"), ("SO-3", "SO-Y"), ("SO-5", "SO-Z")):
        split_before_session_56(number, other)
    return xiehe, huashan, dongcheng
