"""A line with a payment date and nothing paid counted as paid late (0.00, with its days late in the average):
it is still owed now (sales.rollups._late). The months holding such lines are marked for recomputation; the
worker's refresh of dirty rollups (every 15 minutes, and after every import) recomputes them."""

from django.db import migrations


def mark_months(apps, schema_editor):
    schema_editor.execute(
        "INSERT INTO sales_rollupdirty (institution_id, month) "
        "SELECT DISTINCT institution_id, month FROM sales_orderline "
        "WHERE amount_fen > 0 AND paid_fen = 0 AND paid_date IS NOT NULL "
        "ON CONFLICT (institution_id, month) DO NOTHING"
    )


class Migration(migrations.Migration):
    dependencies = [("sales", "0006_refunded_returns")]

    operations = [migrations.RunPython(mark_months, migrations.RunPython.noop)]
