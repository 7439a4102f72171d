# Optimistic locking for users: core.services.update_user bumps the version on every change.

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('core', '0004_signature'),
    ]

    operations = [
        migrations.AddField(
            model_name='user',
            name='version',
            field=models.PositiveIntegerField(default=1, editable=False),
        ),
    ]
