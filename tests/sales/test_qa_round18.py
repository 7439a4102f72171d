"""Session 18 review: purchases — corrected lines audited field by field, the default payment term, the command
line refusing a user who may not import, re-imports after a merge, one order naming two customers, wording of
the import's results, and dry runs of the command line and the API in the wizard's list."""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.utils import timezone, translation

from pharmacrm.core.models import AuditEntry
from pharmacrm.customers import importer
from pharmacrm.customers import services as customers
from pharmacrm.customers.models import ImportJob
from pharmacrm.sales import rollups, services
from pharmacrm.sales.models import MonthlyRollup, OrderLine

from .conftest import line


def text_of(response) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", response.content.decode()))


def days_ago(n: int) -> dt.date:
    return timezone.localdate() - dt.timedelta(days=n)


# --- 1. a corrected line's audit entry lists its fields before and after ------------------------------------


@pytest.mark.parametrize("mode", ["good", "all"])
def test_a_corrected_line_is_audited_with_its_fields_before_and_after(run_import, xiehe, mode):
    day = days_ago(30)
    rows = [line("SO-A", 1, day, xiehe, "P1", 10, "100"), line("SO-A", 2, day, xiehe, "P2", 1, "5")]
    run_import(rows)
    corrected = [{**rows[0], "quantity": "12", "paid_date": str(day)}, rows[1]]

    job = run_import(corrected, mode=mode)

    assert (job.updated_count, job.unchanged_count) == (1, 1)
    changed = OrderLine.objects.get(order_number="SO-A", line_number=1)
    [entry] = AuditEntry.objects.filter(action="update", object_type="sales.orderline")
    assert entry.object_id == str(changed.pk) and entry.object_repr == "SO-A/1"
    assert entry.changes == {
        "quantity": ["10.000", "12.000"], "amount": ["1000.00", "1200.00"],
        "paid_date": [None, day.isoformat()], "paid_amount": ["0.00", "1200.00"],
    }  # fmt: skip
    assert entry.extra["import_job"] == job.pk and entry.actor.username == "admin"
    # the unchanged line has no entry; a re-import of the corrected file writes none
    assert run_import(corrected, mode=mode).unchanged_count == 2
    assert AuditEntry.objects.filter(action="update", object_type="sales.orderline").count() == 1


def test_a_rejected_all_or_nothing_import_audits_no_line(run_import, xiehe):
    day = days_ago(30)
    run_import([line("SO-A", 1, day, xiehe, "P1", 10, "100")])
    job = run_import([line("SO-A", 1, day, xiehe, "P1", 11, "100"), line("SO-B", 1, day, xiehe, "P1", "x", "1")],
                     mode="all")  # fmt: skip
    assert job.status == ImportJob.Status.REJECTED
    assert not AuditEntry.objects.filter(action="update", object_type="sales.orderline").exists()


# --- 2. the default payment term ------------------------------------------------------------------------------


def test_an_unpaid_line_without_a_due_date_falls_due_after_the_default_term(
    run_import, xiehe, client_for, settings
):
    settings.PHARMACRM_DEFAULT_PAYMENT_TERM_DAYS = 90
    old, recent = days_ago(120), days_ago(10)
    run_import([line("SO-1", 1, old, xiehe, "P1", 10, "100"),  # ¥1,000 due 30 days ago
                line("SO-2", 1, recent, xiehe, "P1", 1, "100")])  # ¥100 due in 80 days  # fmt: skip

    credit = services.credit(xiehe.pk)
    assert (credit.outstanding, credit.overdue) == (Decimal("1100.00"), Decimal("1000.00"))
    assert [b["amount"] for b in credit.ageing] == [Decimal("100.00"), Decimal("1000.00"), 0, 0, 0]
    assert credit.assumed_term_days == 90
    # the monthly rollups agree, kept by the import
    assert (
        sum(MonthlyRollup.objects.filter(institution=xiehe).values_list("overdue_fen", flat=True)) == 100_000
    )

    page = client_for("manager").get(f"/sales/customers/{xiehe.pk}/purchases/", HTTP_ACCEPT_LANGUAGE="en")
    assert "they are taken as due 90 days after their order date (the default payment term)" in text_of(page)


def test_a_line_paid_after_the_default_term_counts_as_late_and_rollups_stay_consistent(
    run_import, xiehe, settings
):
    settings.PHARMACRM_DEFAULT_PAYMENT_TERM_DAYS = 30
    order_day = days_ago(100)
    run_import([line("SO-1", 1, order_day, xiehe, "P1", 1, "100", paid_date=order_day + dt.timedelta(days=40)),
                line("SO-2", 1, order_day, xiehe, "P1", 1, "100", paid_date=order_day + dt.timedelta(days=20)),
                line("SO-3", 1, order_day, xiehe, "P1", 1, "100")])  # fmt: skip

    credit = services.credit(xiehe.pk)
    assert (credit.late_lines, credit.average_days_late) == (1, Decimal("10.0"))
    assert credit.overdue == Decimal("100.00") and credit.assumed_term_days == 30
    month = order_day.replace(day=1)
    kept = MonthlyRollup.objects.filter(institution=xiehe, month=month).values().get()
    rollups.mark_dirty([(xiehe.pk, month)])
    rollups.refresh_dirty()
    again = MonthlyRollup.objects.filter(institution=xiehe, month=month).values().get()
    for key in ("on_time_fen", "late_fen", "late_lines", "days_late", "overdue_fen"):
        assert kept[key] == again[key], key
    assert (again["on_time_fen"], again["late_lines"], again["overdue_fen"]) == (10_000, 1, 10_000)


def test_a_line_without_a_due_date_falls_overdue_with_the_calendar(run_import, xiehe, settings):
    settings.PHARMACRM_DEFAULT_PAYMENT_TERM_DAYS = 90
    run_import([line("SO-1", 1, days_ago(85), xiehe, "P1", 1, "100")])
    rollup = MonthlyRollup.objects.get(institution=xiehe)
    assert rollup.overdue_fen == 0

    rollups.refresh_overdue(timezone.localdate() + dt.timedelta(days=10))

    rollup.refresh_from_db()
    assert rollup.overdue_fen == 10_000


def test_the_credit_panel_says_nothing_of_a_term_when_every_line_has_a_due_date(run_import, xiehe):
    day = days_ago(20)
    run_import([line("SO-1", 1, day, xiehe, "P1", 1, "100", payment_due=day + dt.timedelta(days=30))])
    assert services.credit(xiehe.pk).assumed_term_days is None


# --- 3. the command line and a user who may not import ------------------------------------------------------


def test_the_command_line_refuses_a_user_who_may_not_import_in_one_line(order_file, xiehe, users, capsys):
    path = order_file([line("SO-1", 1, "2025-03-01", xiehe, "P1", 1, "10")])

    with pytest.raises(SystemExit) as exit_:
        call_command("import", "orders", str(path), "--user", "agent", "--language", "en")

    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err.strip().splitlines() == [
        "agent may not import orders: that needs the permission “Import orders and payments from the ERP”."
    ]
    assert not OrderLine.objects.exists() and not ImportJob.objects.exists()


# --- 4. a re-import after a merge -----------------------------------------------------------------------------


def test_after_a_merge_the_same_file_reads_back_unchanged(run_import, admin_user, xiehe, huashan):
    rows = [
        line("SO-1", 1, "2026-03-01", huashan, "P1", 2, "10.00"),
        line("SO-2", 1, "2026-03-02", xiehe, "P1", 1, "3"),
    ]
    run_import(rows)
    customers.merge(admin_user, xiehe, huashan)

    again = run_import(rows)  # huashan's code, freed by the merge, leads to the survivor

    assert (again.created_count, again.updated_count, again.unchanged_count, again.error_count) == (
        0,
        0,
        2,
        0,
    )
    # the ERP merged them too: the survivor's own code for the moved line is no change either
    survivor_rows = [{**rows[0], "credit_code": xiehe.credit_code}, rows[1]]
    assert run_import(survivor_rows).unchanged_count == 2
    assert set(OrderLine.objects.values_list("institution_id", flat=True)) == {xiehe.pk}
    # a real correction of a moved line is still one
    assert run_import([{**rows[0], "quantity": "3"}]).updated_count == 1


# --- 5. one order number, two customers -----------------------------------------------------------------------


def test_an_order_naming_two_customers_refuses_its_later_rows(run_import, xiehe, huashan):
    day = days_ago(5)
    job = run_import([line("SO-1", 1, day, xiehe, "P1", 1, "10"), line("SO-1", 2, day, huashan, "P2", 1, "10"),
                      line("SO-1", 3, day, xiehe, "P3", 1, "10"), line("SO-2", 1, day, huashan, "P1", 1, "10")])  # fmt: skip

    assert (job.created_count, job.error_count) == (3, 1)
    [error] = job.errors
    assert (error["row"], error["code"], error["column"]) == (
        3,
        "order_two_customers",
        "客户统一社会信用代码",
    )
    with translation.override("en"):
        assert importer.error_text(error) == (
            "Order SO-1 is for 北京协和医院 (row 2), but this row names another customer, 复旦大学附属华山医院: an "
            "order belongs to one customer. Correct the customer, or give this line its own order number."
        )
    assert not OrderLine.objects.filter(order_number="SO-1", line_number=2).exists()


def test_an_order_naming_two_customers_across_chunks_is_found(run_import, xiehe, huashan, monkeypatch):
    from pharmacrm.sales import importer as orders

    monkeypatch.setattr(orders, "CHUNK_ROWS", 2)
    day = days_ago(5)
    job = run_import([line("SO-1", 1, day, xiehe, "P1", 1, "10"), line("SO-2", 1, day, xiehe, "P1", 1, "10"),
                      line("SO-3", 1, day, xiehe, "P1", 1, "10"), line("SO-1", 2, day, huashan, "P1", 1, "10")])  # fmt: skip
    assert [(e["row"], e["code"]) for e in job.errors] == [(5, "order_two_customers")]


# --- 6. wording -----------------------------------------------------------------------------------------------


def test_one_bad_row_is_one_row_and_a_rejected_import_says_nothing_was_written(run_import, xiehe, client_for):
    job = run_import([line("SO-1", 1, "2025-03-01", xiehe, "P1", 1, "10"),
                      line("SO-1", 2, "2025-03-01", xiehe, "P1", "x", "10")], mode="all")  # fmt: skip
    assert job.status == ImportJob.Status.REJECTED

    page = text_of(client_for("admin").get(f"/customers/import/{job.pk}/", HTTP_ACCEPT_LANGUAGE="en"))

    assert "Nothing was imported: 1 row has errors and the mode is all or nothing." in page
    assert "1 rows" not in page
    assert "Import result: nothing was written" in page
    assert " Created " not in page and " Unchanged " not in page  # no count that reads as written
    assert " new " not in page and "not written" in page  # the good row's preview
    assert "imported all the same" not in page  # the unknown product codes' note speaks of an import


def test_a_due_date_too_far_ahead_is_named_for_what_it_is(run_import, xiehe):
    far = timezone.localdate() + dt.timedelta(days=366 * 5 + 10)
    job = run_import([line("SO-1", 1, days_ago(1), xiehe, "P1", 1, "10", payment_due=far),
                      line("SO-2", 1, days_ago(1), xiehe, "P1", 1, "10", paid_date=timezone.localdate() + dt.timedelta(days=3))])  # fmt: skip
    assert [e["code"] for e in job.errors] == ["too_far_ahead", "future_date"]
    with translation.override("en"):
        assert importer.error_text(job.errors[0]) == (
            "This date lies more than five years from today: check it for a typing error."
        )


# --- 7. dry runs of the command line and the API in the wizard's list ----------------------------------------


def test_dry_runs_of_the_command_line_and_the_api_are_not_waiting_for_confirmation(
    run_import, xiehe, client_for, api_for, admin_user
):
    cli = run_import([line("SO-1", 1, "2025-03-01", xiehe, "P1", 1, "10")], dry_run=True)
    r = api_for("admin").post("/api/v1/sales/orders/", {"lines": [line("SO-2", 1, "2025-03-01", xiehe, "P1", 1, "10")],
                                                       "dry_run": True}, format="json")  # fmt: skip
    api = ImportJob.objects.get(pk=r.json()["job"])
    assert cli.status == api.status == ImportJob.Status.PREVIEWED

    client = client_for("admin")
    listing = text_of(client.get("/customers/import/?target=orders", HTTP_ACCEPT_LANGUAGE="en"))
    assert listing.count("Dry run (command line or API): nothing imported") == 2
    assert "Checked (dry run)" not in listing
    detail = client.get(f"/customers/import/{cli.pk}/", HTTP_ACCEPT_LANGUAGE="en")
    assert 'id="confirm-import"' not in detail.content.decode()
    assert "Check result (a dry run: nothing was written)" in text_of(detail)
    with pytest.raises(Exception, match="dry run from the command line or the API"):
        with translation.override("en"):
            importer.confirm_import(admin_user, api)
    client.post(f"/customers/import/{cli.pk}/confirm/")
    cli.refresh_from_db()
    assert cli.status == ImportJob.Status.PREVIEWED and not OrderLine.objects.exists()


def test_a_changed_payment_term_is_taken_up_by_the_rollups_once_recomputed(run_import, xiehe, settings):
    settings.PHARMACRM_DEFAULT_PAYMENT_TERM_DAYS = 90
    run_import([line("SO-1", 1, days_ago(60), xiehe, "P1", 1, "100")])
    assert MonthlyRollup.objects.get(institution=xiehe).overdue_fen == 0

    settings.PHARMACRM_DEFAULT_PAYMENT_TERM_DAYS = 30
    assert rollups.mark_undated() == 1
    rollups.refresh_dirty()

    assert MonthlyRollup.objects.get(institution=xiehe).overdue_fen == 10_000
    assert services.credit(xiehe.pk).overdue == Decimal("100.00")


def test_the_upgrade_re_fingerprints_lines_moved_by_earlier_merges(run_import, admin_user, xiehe, huashan):
    import importlib

    from django.apps import apps

    from pharmacrm.sales.importer import _hashed_values, row_hash

    rows = [line("SO-1", 1, "2026-03-01", huashan, "P1", 2, "10.00")]
    run_import(rows)
    customers.merge(admin_user, xiehe, huashan)
    moved = OrderLine.objects.values().get()
    OrderLine.objects.update(
        row_hash=row_hash(_hashed_values(moved, huashan.pk))
    )  # as merges left them before
    assert run_import(rows).updated_count == 1
    OrderLine.objects.update(row_hash=row_hash(_hashed_values(moved, huashan.pk)))

    migration = importlib.import_module(
        "pharmacrm.sales.migrations.0005_default_payment_term_and_merged_lines"
    )
    migration.rehash_merged(apps, None)

    assert run_import(rows).unchanged_count == 1
