"""A reaction's onset and end known only to the month or the year (E2B(R3) E.i.4 / E.i.5: YYYYMM, YYYY): their
precision. Stored reactions were typed as whole days: 'day'."""

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('safety', '0014_domestic_death_rules'),
    ]

    operations = [
        migrations.AddField(
            model_name='reaction',
            name='end_precision',
            field=models.CharField(choices=[('day', 'Day'), ('month', 'Month'), ('year', 'Year')], default='day', max_length=5, verbose_name='end precision'),
        ),
        migrations.AddField(
            model_name='reaction',
            name='onset_precision',
            field=models.CharField(choices=[('day', 'Day'), ('month', 'Month'), ('year', 'Year')], default='day', max_length=5, verbose_name='onset precision'),
        ),
    ]
