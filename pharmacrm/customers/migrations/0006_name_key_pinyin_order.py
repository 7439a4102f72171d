"""Names sort in pinyin order (拼音排序): every institution and person gets `name_key` (its reading, see
customers.readings.name_key), and the indexes that served "sort by name" serve it on the key instead. The keys
of existing rows are filled in chunks before those indexes are built."""

from django.conf import settings
from django.db import migrations, models

import pharmacrm.core.fields

CHUNK = 5000
TABLES = ("customers_institution", "customers_person", "customers_searchterm")


def fill(apps, schema_editor):
    from pharmacrm.customers.readings import name_key

    connection = schema_editor.connection
    qn = connection.ops.quote_name
    for label, person in (("Institution", False), ("Person", True)):
        table = qn(apps.get_model("customers", label)._meta.db_table)
        last = 0
        with connection.cursor() as cursor:
            while True:
                cursor.execute(f"SELECT id, name FROM {table} WHERE id > %s ORDER BY id LIMIT {CHUNK}", [last])
                rows = cursor.fetchall()
                if not rows:
                    break
                cursor.executemany(
                    f"UPDATE {table} SET name_key = %s WHERE id = %s",
                    [(name_key(name or "", person), pk) for pk, name in rows],
                )
                last = rows[-1][0]


def statistics(apps, schema_editor):
    """Fresh planner statistics for the tables whose indexes changed (SQLite also rebuilt the two customer
    tables to add the column, which drops their statistics): without them SQLite sorted a million people in a
    temporary b-tree for every list page instead of walking the list's index (42 ms → 640 ms at p95). The
    same full pass as customers.scale.analyze, on an SQLite database that had statistics."""
    with schema_editor.connection.cursor() as cursor:
        if schema_editor.connection.vendor == "sqlite":
            cursor.execute("SELECT 1 FROM sqlite_master WHERE name = 'sqlite_stat1'")
            if cursor.fetchone() is None:
                return  # never analysed (a new database): no statistics to restore
            cursor.execute("PRAGMA analysis_limit=0")
            for table in TABLES:
                cursor.execute(f"ANALYZE {table}")
        else:
            cursor.execute(f"ANALYZE {', '.join(TABLES)}")


class Migration(migrations.Migration):

    dependencies = [
        ('core', '0004_signature'),
        ('customers', '0005_person_no_pattern_indexes'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AlterModelOptions(
            name='institution',
            options={'ordering': ['name_key', 'id'], 'verbose_name': 'institution', 'verbose_name_plural': 'institutions'},
        ),
        migrations.AlterModelOptions(
            name='person',
            options={'ordering': ['name_key', 'id'], 'verbose_name': 'person', 'verbose_name_plural': 'people'},
        ),
        migrations.RemoveIndex(
            model_name='institution',
            name='inst_name',
        ),
        migrations.RemoveIndex(
            model_name='person',
            name='person_name',
        ),
        migrations.RemoveIndex(
            model_name='person',
            name='person_province_name',
        ),
        migrations.RemoveIndex(
            model_name='person',
            name='person_stage_name',
        ),
        migrations.AddField(
            model_name='institution',
            name='name_key',
            field=pharmacrm.core.fields.CodeCharField(default='', editable=False, max_length=300),
        ),
        migrations.AddField(
            model_name='person',
            name='name_key',
            field=pharmacrm.core.fields.CodeCharField(default='', editable=False, max_length=300),
        ),
        migrations.RunPython(fill, migrations.RunPython.noop, elidable=True),
        migrations.AddIndex(
            model_name='institution',
            index=models.Index(fields=['name_key', 'id'], name='inst_name'),
        ),
        migrations.AddIndex(
            model_name='person',
            index=models.Index(fields=['name_key', 'id'], name='person_name'),
        ),
        migrations.AddIndex(
            model_name='person',
            index=models.Index(condition=models.Q(('merged_into__isnull', True)), fields=['province', 'name_key', 'id', 'stage', 'tier', 'role'], name='person_province_name'),
        ),
        migrations.AddIndex(
            model_name='person',
            index=models.Index(fields=['stage', 'name_key', 'id'], name='person_stage_name'),
        ),
        migrations.RunPython(statistics, migrations.RunPython.noop, elidable=True),
    ]
