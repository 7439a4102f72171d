"""Meeting action items get the plan items' overdue alert (docs/keyaccounts.md): a due clock swept by the worker
(core/dueclock.py). The open actions of the accounts served are armed for the end of their due day, local time; one
already overdue is reported once by the first sweep after the upgrade (nobody was told of it before). Done actions and
those of a de-listed (closed) file are not watched."""

import datetime as dt

from django.db import migrations, models
from django.utils import timezone


def arm_open_actions(apps, schema_editor):
    MeetingAction = apps.get_model("keyaccounts", "MeetingAction")
    actions = MeetingAction.objects.using(schema_editor.connection.alias)
    armed = []
    for action in actions.filter(done_at__isnull=True, meeting__account__status="active").only("id", "due_date"):
        action.next_check_at = timezone.make_aware(dt.datetime.combine(action.due_date + dt.timedelta(days=1), dt.time()))
        armed.append(action)
    actions.bulk_update(armed, ["next_check_at"], batch_size=1000)


class Migration(migrations.Migration):
    dependencies = [
        ("keyaccounts", "0016_meetingaction_version"),
    ]

    operations = [
        migrations.AddField(
            model_name="meetingaction",
            name="claimed_until",
            field=models.DateTimeField(blank=True, editable=False, null=True),
        ),
        migrations.AddField(
            model_name="meetingaction",
            name="next_check_at",
            field=models.DateTimeField(blank=True, editable=False, null=True),
        ),
        migrations.AddField(
            model_name="meetingaction",
            name="overdue_notified_at",
            field=models.DateTimeField(blank=True, editable=False, null=True),
        ),
        migrations.AddIndex(
            model_name="meetingaction",
            index=models.Index(
                condition=models.Q(("next_check_at__isnull", False)), fields=["next_check_at"], name="meetingaction_due"
            ),
        ),
        migrations.RunPython(arm_open_actions, migrations.RunPython.noop, elidable=True),
    ]
