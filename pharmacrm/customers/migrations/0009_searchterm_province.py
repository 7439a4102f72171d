"""Search postings carry their customer's province (the two-digit prefix of its region code), inside the
term index, so that a search by someone who sees one territory reads that territory's postings only."""

from django.db import migrations, models

FILL = {
    # kind 1: institutions, kind 2: people; a customer without a region keeps 0
    "postgresql": """
        UPDATE customers_searchterm s SET province = CAST(substr(c.province, 1, 2) AS smallint)
        FROM {table} c WHERE s.kind = {kind} AND c.id = s.obj_id AND c.province <> ''
    """,
    "sqlite": """
        UPDATE customers_searchterm SET province = COALESCE((
            SELECT CAST(substr(c.province, 1, 2) AS INTEGER) FROM {table} c
            WHERE c.id = customers_searchterm.obj_id AND c.province <> ''), 0)
        WHERE kind = {kind}
    """,
}


def fill(apps, schema_editor):
    sql = FILL[schema_editor.connection.vendor]
    for kind, table in ((1, "customers_institution"), (2, "customers_person")):
        schema_editor.execute(sql.format(table=table, kind=kind))


class Migration(migrations.Migration):
    dependencies = [("customers", "0008_vacuum_after_name_key")]

    operations = [
        migrations.SeparateDatabaseAndState(
            # a plain ADD COLUMN with its default: SQLite would otherwise copy the whole table
            database_operations=[
                migrations.RunSQL(
                    "ALTER TABLE customers_searchterm ADD COLUMN province smallint DEFAULT 0 NOT NULL",
                    "ALTER TABLE customers_searchterm DROP COLUMN province",
                )
            ],
            state_operations=[
                migrations.AddField("searchterm", "province", models.SmallIntegerField(db_default=0)),
            ],
        ),
        migrations.RemoveIndex("searchterm", "search_term"),
        migrations.RunPython(fill, migrations.RunPython.noop),
        migrations.AddIndex(
            "searchterm", models.Index(fields=["term", "kind", "obj_id", "province"], name="search_term")
        ),
    ]
