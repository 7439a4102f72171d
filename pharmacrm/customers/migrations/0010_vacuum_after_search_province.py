"""0009 rewrote every search posting (its province): PostgreSQL then holds a dead version of each, and the
term index's index-only scans would fetch rows from the table again until autovacuum gets there. VACUUM
cannot run inside a transaction, hence a migration of its own, not atomic. SQLite needs nothing."""

from django.db import migrations


def vacuum(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("VACUUM (ANALYZE) customers_searchterm")


class Migration(migrations.Migration):
    atomic = False

    dependencies = [("customers", "0009_searchterm_province")]

    operations = [migrations.RunPython(vacuum, migrations.RunPython.noop, elidable=True)]
