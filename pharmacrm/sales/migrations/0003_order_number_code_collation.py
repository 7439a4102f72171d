"""Order numbers compare by code point on PostgreSQL too (COLLATE "C"), so that the order-number filter walks
the (order number, line) index as a range under any database collation. SQLite already compares by code
point: there the change is to the migration state only, and the 10-million-line table is not rebuilt."""

from django.db import migrations

import pharmacrm.core.fields


class AlterFieldOnPostgreSQL(migrations.AlterField):
    """AlterField whose schema change runs on PostgreSQL only (SQLite would copy the whole table for a
    collation it does not use)."""

    def database_forwards(self, app_label, schema_editor, from_state, to_state):
        if schema_editor.connection.vendor == "postgresql":
            super().database_forwards(app_label, schema_editor, from_state, to_state)

    def database_backwards(self, app_label, schema_editor, from_state, to_state):
        if schema_editor.connection.vendor == "postgresql":
            super().database_backwards(app_label, schema_editor, from_state, to_state)


class Migration(migrations.Migration):
    dependencies = [
        ("sales", "0002_recount_refunded_returns"),
    ]

    operations = [
        AlterFieldOnPostgreSQL(
            model_name="orderline",
            name="order_number",
            field=pharmacrm.core.fields.CodeCharField(max_length=40, verbose_name="order number"),
        ),
    ]
