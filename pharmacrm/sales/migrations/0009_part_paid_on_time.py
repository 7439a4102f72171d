"""What a line had paid by its due date counts as paid on time, in full or in part (sales.rollups._on_time): a line
paid in part counted nowhere before. The months holding such lines are marked for recomputation; the worker's refresh
of dirty rollups (every 15 minutes, and after every import) recomputes them from their lines."""

from django.db import migrations


def mark(apps, schema_editor):
    schema_editor.execute(
        "INSERT INTO sales_rollupdirty (institution_id, month) "
        "SELECT DISTINCT institution_id, month FROM sales_orderline "
        "WHERE amount_fen > 0 AND paid_fen > 0 AND paid_fen < amount_fen AND paid_date IS NOT NULL "
        "ON CONFLICT (institution_id, month) DO NOTHING"
    )


class Migration(migrations.Migration):
    dependencies = [("sales", "0008_full_width_codes")]

    operations = [migrations.RunPython(mark, migrations.RunPython.noop)]
