"""An appraisal result counts in the ranking of every team its person was in (Appraisal.teams), not only the first
by name (Appraisal.team). Results computed before knew only that first team: it is their one team here; the next
computation of a draft period records them all."""

from django.db import migrations, models


def first_team(apps, schema_editor):
    Appraisal = apps.get_model("sales", "Appraisal")
    through = Appraisal.teams.through
    rows = Appraisal.objects.filter(team__isnull=False).values_list("pk", "team_id").order_by("pk")
    through.objects.bulk_create([through(appraisal_id=pk, team_id=team) for pk, team in rows.iterator()],
                                batch_size=1000)  # fmt: skip


class Migration(migrations.Migration):
    dependencies = [
        ("core", "0012_idempotent_request"),
        ("sales", "0014_kpi_appraisal"),
    ]

    operations = [
        migrations.AddField(
            model_name="appraisal",
            name="teams",
            field=models.ManyToManyField(blank=True, related_name="+", to="core.team", verbose_name="teams"),
        ),
        migrations.RunPython(first_team, migrations.RunPython.noop, elidable=True),
    ]
