"""A customer listed again is served by the team of its earlier file (services.service_team): the files of one customer
share their service team, which was one team per file (and a second team named with the moment of approval,
重点客户服务组·协和医院·20261205155641). And a de-listed file's team serves nobody: its members leave it and it has no
lead (services._disband_team). The teams of files de-listed before this migration still held their members, who kept
the team's queue and its notifications, and their project manager the team's board and the safety escalations of
the former members: they are emptied here — the files' own records of who served (team members, tenures) stay."""

import django.db.models.deletion
from django.db import migrations, models


def empty_delisted_teams(apps, schema_editor):
    alias = schema_editor.connection.alias
    KeyAccount = apps.get_model("keyaccounts", "KeyAccount")
    Team = apps.get_model("core", "Team")
    User = apps.get_model("core", "User")
    served = KeyAccount.objects.using(alias).filter(status="active").values("team_id")
    closed = (KeyAccount.objects.using(alias).filter(status="delisted", team__isnull=False)
              .exclude(team_id__in=served).values_list("team_id", flat=True))  # fmt: skip
    ids = list(closed)
    if ids:
        User.teams.through.objects.using(alias).filter(team_id__in=ids).delete()
        Team.objects.using(alias).filter(pk__in=ids).update(lead=None)


class Migration(migrations.Migration):

    dependencies = [
        ("core", "0011_user_session_salt"),
        ("keyaccounts", "0017_meetingaction_overdue_clock"),
    ]

    operations = [
        migrations.AlterField(
            model_name="keyaccount",
            name="team",
            field=models.ForeignKey(
                blank=True, null=True, on_delete=django.db.models.deletion.PROTECT, related_name="key_accounts",
                to="core.team", verbose_name="service team",
            ),
        ),
        migrations.RunPython(empty_delisted_teams, migrations.RunPython.noop, elidable=True),
    ]
