"""Months a corrected file emptied: the incremental evaluation re-scores the customer the lines left."""

import django.utils.timezone
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("sales", "0003_order_number_code_collation")]

    operations = [
        migrations.CreateModel(
            name="RollupEmptied",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("institution_id", models.BigIntegerField()),
                ("month", models.DateField()),
                ("emptied_at", models.DateTimeField(db_index=True, default=django.utils.timezone.now)),
            ],
        ),
    ]
