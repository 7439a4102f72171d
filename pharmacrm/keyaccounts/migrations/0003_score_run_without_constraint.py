"""A score's reference to its run loses its database constraint: every run points each row it rewrites at
itself, and PostgreSQL checked that reference once per row when the run committed (0.15 s for the 22,700
rows of an incremental update). Runs are never deleted. Only PostgreSQL drops it: SQLite would rebuild
the whole table to alter a column, and its check costs next to nothing."""

import django.db.models.deletion
from django.db import migrations, models


def _run_constraints(schema_editor) -> list[str]:
    with schema_editor.connection.cursor() as cursor:
        found = schema_editor.connection.introspection.get_constraints(cursor, "keyaccounts_score")
    return [
        name for name, info in found.items()
        if info["foreign_key"] and info["foreign_key"][0] == "keyaccounts_evaluationrun" and info["columns"] == ["run_id"]
    ]  # fmt: skip


def drop(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        for name in _run_constraints(schema_editor):
            schema_editor.execute(f'ALTER TABLE "keyaccounts_score" DROP CONSTRAINT "{name}"')


def restore(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql" and not _run_constraints(schema_editor):
        schema_editor.execute(
            'ALTER TABLE "keyaccounts_score" ADD CONSTRAINT "keyaccounts_score_run_id_fk_evaluationrun" '
            'FOREIGN KEY ("run_id") REFERENCES "keyaccounts_evaluationrun" ("id") DEFERRABLE INITIALLY DEFERRED'
        )


class Migration(migrations.Migration):
    dependencies = [("keyaccounts", "0002_score_lean_indexes")]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name="score",
                    name="run",
                    field=models.ForeignKey(
                        blank=True, db_constraint=False, db_index=False, null=True,
                        on_delete=django.db.models.deletion.SET_NULL, related_name="+", to="keyaccounts.evaluationrun",
                    ),  # fmt: skip
                ),
            ],
            database_operations=[migrations.RunPython(drop, restore)],
        ),
    ]
