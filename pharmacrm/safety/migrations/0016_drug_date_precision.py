"""A drug's start and stop known only to the month or the year (E2B(R3) G.k.4.r.4 / G.k.4.r.5: YYYYMM, YYYY): their
precision. Stored drugs were typed as whole days: 'day'."""

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('safety', '0015_reaction_date_precision'),
    ]

    operations = [
        migrations.AddField(
            model_name='drug',
            name='start_precision',
            field=models.CharField(choices=[('day', 'Day'), ('month', 'Month'), ('year', 'Year')], default='day', max_length=5, verbose_name='start precision'),
        ),
        migrations.AddField(
            model_name='drug',
            name='stop_precision',
            field=models.CharField(choices=[('day', 'Day'), ('month', 'Month'), ('year', 'Year')], default='day', max_length=5, verbose_name='stop precision'),
        ),
    ]
