"""Import jobs keep a heartbeat while they run, with the file row through which rows were saved and how many
created rows a re-import could not recognise: a job whose worker died is then marked interrupted, with what
was really written."""

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ("customers", "0006_name_key_pinyin_order"),
    ]

    operations = [
        migrations.AddField(
            model_name="importjob",
            name="heartbeat_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="importjob",
            name="last_row",
            field=models.PositiveIntegerField(default=0),
        ),
        migrations.AddField(
            model_name="importjob",
            name="unkeyed_count",
            field=models.PositiveIntegerField(default=0),
        ),
    ]
