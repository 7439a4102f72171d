"""The database table of the shared cache (settings.CACHES): the API's throttle counters, the same for every
web process. Django's `createcachetable`, run by `migrate` so that no installation step can be forgotten."""

from django.core.management import call_command
from django.db import migrations


def create_cache_table(apps, schema_editor):
    call_command("createcachetable", database=schema_editor.connection.alias, verbosity=0)


def drop_cache_table(apps, schema_editor):
    schema_editor.execute("DROP TABLE IF EXISTS pharmacrm_cache")


class Migration(migrations.Migration):
    dependencies = [("core", "0006_user_language")]

    operations = [migrations.RunPython(create_cache_table, drop_cache_table)]
