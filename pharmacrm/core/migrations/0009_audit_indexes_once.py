"""The audit trail kept each index once: the LIKE indexes PostgreSQL adds for `db_index` text columns, and
the single-column indexes of `actor` and `object_type` (audit_actor and audit_object lead with them), served no
query and cost 15 % of every bulk append (an evaluation's tier changes). Dropped by name, on both databases:
altering the fields would make SQLite copy the whole table and lose its append-only triggers."""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('core', '0008_region_full_names_direct_counties'),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name='auditentry',
                    name='action',
                    field=models.CharField(choices=[('create', 'Create'), ('update', 'Update'), ('delete', 'Delete'), ('merge', 'Merge'), ('import', 'Import'), ('export', 'Export'), ('login', 'Login'), ('login_failed', 'Failed login'), ('logout', 'Logout'), ('read_personal', 'Read personal data'), ('rotate_keys', 'Rotate encryption keys'), ('backup', 'Backup'), ('restore', 'Restore'), ('access_denied', 'Access denied'), ('sign', 'Electronic signature')], max_length=20, verbose_name='action'),
                ),
                migrations.AlterField(
                    model_name='auditentry',
                    name='actor',
                    field=models.ForeignKey(blank=True, db_constraint=False, db_index=False, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to=settings.AUTH_USER_MODEL, verbose_name='actor'),
                ),
                migrations.AlterField(
                    model_name='auditentry',
                    name='object_type',
                    field=models.CharField(blank=True, max_length=64, verbose_name='object type'),
                ),
            ],
            database_operations=[
                migrations.RunSQL(
                    [f"DROP INDEX IF EXISTS {name}" for name in (
                        "core_auditentry_action_6ad0fad5", "core_auditentry_action_6ad0fad5_like",
                        "core_auditentry_actor_id_d8248cee", "core_auditentry_object_type_fca61eb3",
                        "core_auditentry_object_type_fca61eb3_like",
                    )],
                    migrations.RunSQL.noop,
                ),
            ],
        ),
        migrations.AddIndex(
            model_name='auditentry',
            index=models.Index(fields=['action'], name='audit_action'),
        ),
    ]
