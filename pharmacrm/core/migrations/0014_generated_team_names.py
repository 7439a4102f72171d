"""Teams the product names (a key account's service team): what they are named from, so that they read in the reader's
language (Team.shown_name); keyaccounts 0022 fills it in for the teams named before."""

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('core', '0013_lockout_names_digested'),
    ]

    operations = [
        migrations.AddField(
            model_name='team',
            name='generated',
            field=models.CharField(blank=True, default='', editable=False, max_length=20),
        ),
        migrations.AddField(
            model_name='team',
            name='generated_params',
            field=models.JSONField(blank=True, default=dict, editable=False),
        ),
    ]
