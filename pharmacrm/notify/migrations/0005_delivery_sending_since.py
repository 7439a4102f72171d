"""A delivery is marked as being sent just before its send (tasks._start_send): a worker whose lease ran out while it
waited for the database's lock after sending is never followed by another worker sending it again. Adding a nullable
column: quick on SQLite and PostgreSQL."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("notify", "0004_delivery_reasons_as_codes"),
    ]

    operations = [
        migrations.AddField(
            model_name="delivery",
            name="sending_since",
            field=models.DateTimeField(blank=True, null=True, verbose_name="sending since"),
        ),
    ]
