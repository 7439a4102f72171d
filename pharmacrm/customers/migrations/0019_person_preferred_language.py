"""People get a preferred language (沟通语言): the service desk acknowledges their mail and writes its survey mails
in it. Existing records stay blank: their mail's language, else the site's default, as before."""

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('customers', '0018_email_bidx_unicode_domain'),
    ]

    operations = [
        migrations.AddField(
            model_name='person',
            name='preferred_language',
            field=models.CharField(blank=True, choices=[('zh-hans', 'Simplified Chinese'), ('en', 'English'), ('zh-hant', 'Traditional Chinese')], default='', max_length=8, verbose_name='preferred language'),
        ),
    ]
