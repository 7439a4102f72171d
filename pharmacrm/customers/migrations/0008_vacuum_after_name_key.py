"""After 0006 wrote every customer row once more (the name key), PostgreSQL holds a dead version of each and
its visibility map no longer marks the pages all-visible: the lists' covering indexes then fetch every row
from the table again, until autovacuum gets there (list p95 175 ms instead of 50 ms at 2.1 M people). VACUUM
cannot run inside a transaction, hence a migration of its own, not atomic. SQLite needs nothing."""

from django.db import migrations


def vacuum(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("VACUUM (ANALYZE) customers_institution, customers_person")


class Migration(migrations.Migration):
    atomic = False

    dependencies = [("customers", "0007_importjob_heartbeat")]

    operations = [migrations.RunPython(vacuum, migrations.RunPython.noop, elidable=True)]
