"""A return's paid amount is now the amount refunded to the customer, negative as the return's amount (an ERP
writes money paid back so); before, only 0 was accepted, and a refund date alone stored 0. The returns stored
with a refund date and nothing refunded are brought to the new rule — refunded in full, as the date alone now
means — and re-fingerprinted, so that the same file imported again finds them unchanged (sales.importer.row_hash);
their months are marked for recomputation (the paid amounts of the months change).

A month's orders are its purchase orders now: a return's own order (its lines all negative) no longer counts as
one (the evaluation's purchase frequency reads them). The months holding returns are marked for recomputation
too; the worker's refresh of dirty rollups (every 15 minutes, and after every import) recomputes them."""

from django.db import migrations

FIELDS = [
    "id", "order_number", "line_number", "order_date", "month", "institution_id", "product_code", "product_name",
    "batch_number", "quantity", "unit_price", "amount_fen", "invoice_number", "payment_due", "paid_date",
    "paid_fen", "row_hash",
]  # fmt: skip


def refund_in_full(apps, schema_editor):
    from pharmacrm.sales.importer import _hashed_values, row_hash

    OrderLine = apps.get_model("sales", "OrderLine")
    RollupDirty = apps.get_model("sales", "RollupDirty")
    lines = OrderLine.objects.filter(amount_fen__lt=0, paid_date__isnull=False, paid_fen=0).order_by("id")
    months = set()
    for line in lines.values(*FIELDS).iterator(chunk_size=5000):
        if row_hash(_hashed_values(line, line["institution_id"])) != line["row_hash"]:
            continue  # not fingerprinted as the import would have: left as it is
        line["paid_fen"] = line["amount_fen"]
        OrderLine.objects.filter(pk=line["id"]).update(
            paid_fen=line["amount_fen"], row_hash=row_hash(_hashed_values(line, line["institution_id"]))
        )
        months.add((line["institution_id"], line["month"]))
    RollupDirty.objects.bulk_create(
        [RollupDirty(institution_id=i, month=m) for i, m in sorted(months)], ignore_conflicts=True, batch_size=5000
    )


def mark_return_months(apps, schema_editor):
    schema_editor.execute(
        "INSERT INTO sales_rollupdirty (institution_id, month) "
        "SELECT DISTINCT institution_id, month FROM sales_orderline WHERE amount_fen < 0 "
        "ON CONFLICT (institution_id, month) DO NOTHING"
    )


class Migration(migrations.Migration):
    dependencies = [("sales", "0005_default_payment_term_and_merged_lines")]

    operations = [
        migrations.RunPython(refund_in_full, migrations.RunPython.noop),
        migrations.RunPython(mark_return_months, migrations.RunPython.noop),
    ]
