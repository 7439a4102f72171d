"""Returns (negative amounts) no longer count as paid on time or late (sales.rollups.LATE / ON_TIME). The
months that already hold a refunded return are marked for recomputation; the worker's refresh of dirty
rollups (every 15 minutes, and after every import) recomputes them from their lines."""

from django.db import migrations


def mark(apps, schema_editor):
    schema_editor.execute(
        "INSERT INTO sales_rollupdirty (institution_id, month) "
        "SELECT DISTINCT institution_id, month FROM sales_orderline WHERE amount_fen < 0 AND paid_date IS NOT NULL "
        "ON CONFLICT (institution_id, month) DO NOTHING"
    )


class Migration(migrations.Migration):
    dependencies = [("sales", "0001_initial")]

    operations = [migrations.RunPython(mark, migrations.RunPython.noop)]
