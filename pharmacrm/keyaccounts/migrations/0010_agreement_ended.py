# Agreements still in force when their key account is de-listed end ("ended"): a new choice, no schema change.

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('keyaccounts', '0009_score_band'),
    ]

    operations = [
        migrations.AlterField(
            model_name='agreement',
            name='status',
            field=models.CharField(choices=[('draft', 'Generated, not signed'), ('signed', 'Signed'), ('expired', 'Expired'), ('renewed', 'Renewed'), ('ended', 'Ended on de-listing')], default='draft', max_length=8, verbose_name='status'),
        ),
    ]
