"""On PostgreSQL, people lose the pattern-matching (`_like`) copies Django adds to indexed text columns: the
internal code, the external id and the three blind indexes are only ever looked up by equality (a blind
index cannot be matched by prefix at all). Five fewer b-trees to keep for every imported or edited person:
400 MB of index at a million people. (The people import's rate did not measurably change: its limit is
elsewhere, see docs/benchmarks.md.) SQLite has no such indexes."""

from django.db import migrations

LIKE = {
    "customers_person_code_88f88ae6_like": "code",
    "customers_person_external_id_68d1e29e_like": "external_id",
    "customers_person_mobile_bidx_476d4c54_like": "mobile_bidx",
    "customers_person_landline_bidx_1f06d8ff_like": "landline_bidx",
    "customers_person_email_bidx_c2a0118b_like": "email_bidx",
}


def drop(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        for name in LIKE:
            schema_editor.execute(f'DROP INDEX IF EXISTS "{name}"')


def create(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        for name, column in LIKE.items():
            schema_editor.execute(
                f'CREATE INDEX IF NOT EXISTS "{name}" ON "customers_person" ("{column}" varchar_pattern_ops)'
            )


class Migration(migrations.Migration):
    dependencies = [("customers", "0004_institution_fewer_indexes")]

    operations = [migrations.RunPython(drop, create)]
