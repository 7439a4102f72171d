"""On PostgreSQL, the ID number's blind index loses the pattern-matching (`_like`) copy Django adds to indexed
text columns, as the other blind indexes did in 0005: it is only looked up by equality. (A migration of its
own: the copy is created at the end of the migration that adds the column.)"""

from django.db import migrations

LIKE = "customers_person_id_number_bidx_2308a3a5_like"  # PostgreSQL's pattern copy: equality look-ups only


def drop_like(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(f'DROP INDEX IF EXISTS "{LIKE}"')


def create_like(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(
            f'CREATE INDEX IF NOT EXISTS "{LIKE}" ON "customers_person" ("id_number_bidx" varchar_pattern_ops)'
        )


class Migration(migrations.Migration):
    dependencies = [("customers", "0015_person_id_number_bidx")]

    operations = [migrations.RunPython(drop_like, create_like)]
