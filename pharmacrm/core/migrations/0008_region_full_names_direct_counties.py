"""Full names of the county-level cities under a province directly (省直辖县): 海南省琼海市, not
海南省直辖县琼海市 (the table files them under a division named 直辖县, which is no part of the name)."""

from django.db import migrations


def refresh_full_names(apps, schema_editor):
    from pharmacrm.core.setup import SKIP_IN_FULL_NAME

    Region = apps.get_model("core", "Region")
    rows = {r.code: r for r in Region.objects.all()}

    def full(code):
        parts = []
        while code:
            region = rows[code]
            if region.name not in SKIP_IN_FULL_NAME:
                parts.append(region.name)
            code = region.parent_id
        return "".join(reversed(parts))

    changed = []
    for region in rows.values():
        name = full(region.code)
        if name != region.full_name:
            region.full_name = name
            changed.append(region)
    Region.objects.bulk_update(changed, ["full_name"], batch_size=500)


class Migration(migrations.Migration):
    dependencies = [("core", "0007_shared_cache_table")]

    operations = [migrations.RunPython(refresh_full_names, migrations.RunPython.noop)]
