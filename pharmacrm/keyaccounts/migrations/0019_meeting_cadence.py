"""Key accounts get a service-meeting cadence (quarterly unless set) and its due clock (core/dueclock.py): the clock of
every file served is armed for now, so that the first sweep after the upgrade works out each account's next due day
(its last meeting since the listing, or its listing day, plus the cadence) and sends what is due — a reminder when the
day is within a week, the overdue alert when it has passed (nobody was told before). De-listed files are not watched."""

from django.db import migrations, models
from django.utils import timezone


def arm_served_accounts(apps, schema_editor):
    KeyAccount = apps.get_model("keyaccounts", "KeyAccount")
    KeyAccount.objects.using(schema_editor.connection.alias).filter(status="active").update(next_check_at=timezone.now())


class Migration(migrations.Migration):

    dependencies = [
        ('core', '0012_idempotent_request'),
        ('customers', '0020_import_job_last_sheet'),
        ('keyaccounts', '0018_team_shared_by_files'),
    ]

    operations = [
        migrations.AddField(
            model_name='keyaccount',
            name='claimed_until',
            field=models.DateTimeField(blank=True, editable=False, null=True),
        ),
        migrations.AddField(
            model_name='keyaccount',
            name='meeting_cadence',
            field=models.CharField(choices=[('monthly', 'Monthly'), ('bimonthly', 'Every two months'), ('quarterly', 'Quarterly'), ('half_yearly', 'Half-yearly')], default='quarterly', max_length=12, verbose_name='meeting cadence'),
        ),
        migrations.AddField(
            model_name='keyaccount',
            name='meeting_due_notified_for',
            field=models.DateField(blank=True, editable=False, null=True),
        ),
        migrations.AddField(
            model_name='keyaccount',
            name='meeting_overdue_notified_for',
            field=models.DateField(blank=True, editable=False, null=True),
        ),
        migrations.AddField(
            model_name='keyaccount',
            name='next_check_at',
            field=models.DateTimeField(blank=True, editable=False, null=True),
        ),
        migrations.AddIndex(
            model_name='keyaccount',
            index=models.Index(condition=models.Q(('next_check_at__isnull', False)), fields=['next_check_at'], name='keyaccount_meeting_due'),
        ),
        migrations.RunPython(arm_served_accounts, migrations.RunPython.noop, elidable=True),
    ]
