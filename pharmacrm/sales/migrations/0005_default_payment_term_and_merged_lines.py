"""Two upgrades of stored lines:

* a line without a payment due date now falls due at the end of the default payment term
  (PHARMACRM_DEFAULT_PAYMENT_TERM_DAYS after its order date: sales.rollups.due_date) for overdue amounts,
  ageing and lateness. The months holding such lines are marked for recomputation; the worker's refresh of
  dirty rollups (every 15 minutes, and after every import) recomputes them from their lines;
* lines moved by a customer merge before merges re-fingerprinted them keep a fingerprint made with the merged
  record, so a re-import of the same file called them updated: they are re-fingerprinted with their customer
  (sales.importer.rehash_moved)."""

from django.db import migrations


def mark_undated(apps, schema_editor):
    schema_editor.execute(
        "INSERT INTO sales_rollupdirty (institution_id, month) "
        "SELECT DISTINCT institution_id, month FROM sales_orderline WHERE payment_due IS NULL "
        "ON CONFLICT (institution_id, month) DO NOTHING"
    )


def rehash_merged(apps, schema_editor):
    from pharmacrm.sales.importer import rehash_moved

    MergeRecord = apps.get_model("customers", "MergeRecord")
    institution_kind = 1  # customers.SearchTerm.Kind.INSTITUTION
    for merged_id, moved in (
        MergeRecord.objects.filter(kind=institution_kind).order_by("id").values_list("merged_id", "moved")
    ):
        lines = (moved or {}).get("sales.orderline.institution") or []
        if lines:
            rehash_moved(list(lines), merged_id)


class Migration(migrations.Migration):
    dependencies = [
        ("sales", "0004_rollupemptied"),
        ("customers", "0001_initial"),
    ]

    operations = [
        migrations.RunPython(mark_undated, migrations.RunPython.noop),
        migrations.RunPython(rehash_merged, migrations.RunPython.noop),
    ]
