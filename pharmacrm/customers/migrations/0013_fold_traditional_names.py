# Search, pinyin order and duplicate detection read Traditional characters as Simplified (normalise.name):
# the few stored names written in Traditional characters get their normalised name, pinyin key and
# search terms again, so that 北京协和医院 finds 北京協和醫院 entered before. No schema change.
from django.db import migrations


def fold(apps, schema_editor):
    from pharmacrm.customers import normalise, readings, search

    SearchTerm = apps.get_model("customers", "SearchTerm")
    for label, kind, columns, make in (
        ("Institution", search.INSTITUTION, ("id", "name", "short_name"), search.institution_terms),
        ("Person", search.PERSON, ("id", "name"), search.person_terms),
    ):
        model = apps.get_model("customers", label)
        found = [
            row[0] for row in model.objects.order_by().values_list(*columns).iterator(chunk_size=20_000)
            if any(normalise.has_traditional(text) for text in row[1:])
        ]
        for start in range(0, len(found), 500):
            rows = model.objects.filter(pk__in=found[start : start + 500])
            terms = []
            for obj in rows:
                model.objects.filter(pk=obj.pk).update(name_norm=normalise.name(obj.name), name_key=readings.name_key(obj.name))
                if obj.merged_into_id is not None:
                    continue
                made = make(obj)  # the historical object has the name (and short name) they read
                number = search.province_number(obj.province)
                terms += [SearchTerm(term=t, kind=kind, obj_id=obj.pk, province=number) for t in made]
            SearchTerm.objects.filter(kind=kind, obj_id__in=found[start : start + 500]).delete()
            SearchTerm.objects.bulk_create(terms, batch_size=2000)


class Migration(migrations.Migration):
    dependencies = [("customers", "0012_importjob_cancelled")]

    operations = [migrations.RunPython(fold, migrations.RunPython.noop, elidable=True)]
