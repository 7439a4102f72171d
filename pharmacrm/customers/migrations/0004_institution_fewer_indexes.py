"""Fewer indexes on institutions: every index is one more write for each changed customer (an evaluation
that moves 56,000 customers' tiers, an import). Gone: the single-column indexes on type and region (the
composite indexes inst_kind_updated and inst_region_name start with them) and, on PostgreSQL, the
pattern-matching (`_like`) copies Django adds to indexed text columns — no query matches these columns
by prefix."""

import django.db.models.deletion
from django.db import migrations, models

PLAIN = {
    "customers_institution_kind_d3b8e85a": "kind",
    "customers_institution_region_id_75df10e9": "region_id",
}
LIKE = {
    "customers_institution_code_6c5cd298_like": "code",
    "customers_institution_external_id_274bf8bd_like": "external_id",
    "customers_institution_credit_code_696a469c_like": "credit_code",
    "customers_institution_kind_d3b8e85a_like": "kind",
    "customers_institution_phone_norm_f6e3402d_like": "phone_norm",
    "customers_institution_region_id_75df10e9_like": "region_id",
}


def drop(apps, schema_editor):
    names = list(PLAIN) + (list(LIKE) if schema_editor.connection.vendor == "postgresql" else [])
    for name in names:
        schema_editor.execute(f'DROP INDEX IF EXISTS "{name}"')


def create(apps, schema_editor):
    for name, column in PLAIN.items():
        schema_editor.execute(f'CREATE INDEX IF NOT EXISTS "{name}" ON "customers_institution" ("{column}")')
    if schema_editor.connection.vendor == "postgresql":
        for name, column in LIKE.items():
            schema_editor.execute(
                f'CREATE INDEX IF NOT EXISTS "{name}" ON "customers_institution" ("{column}" varchar_pattern_ops)'
            )


class Migration(migrations.Migration):
    dependencies = [
        ("core", "0001_initial"),
        ("customers", "0003_alter_importjob_target"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name="institution",
                    name="kind",
                    field=models.CharField(choices=[('hospital', 'Hospital'), ('department', 'Department'), ('clinic', 'Clinic'), ('township', 'Township health centre'), ('community', 'Community health centre'), ('pharmacy', 'Pharmacy'), ('distributor', 'Distributor'), ('insurance', 'Medical-insurance bureau'), ('research', 'Research institute'), ('association', 'Industry association'), ('other', 'Other')], max_length=16, verbose_name='type'),
                ),
                migrations.AlterField(
                    model_name="institution",
                    name="region",
                    field=models.ForeignKey(
                        blank=True, db_index=False, null=True, on_delete=django.db.models.deletion.PROTECT,
                        related_name="+", to="core.region", verbose_name="region",
                    ),
                ),
            ],
            database_operations=[migrations.RunPython(drop, create)],
        ),
    ]
