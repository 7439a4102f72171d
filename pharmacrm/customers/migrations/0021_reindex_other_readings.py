# Search finds a person by their surname's reading and by its characters' common one (曾 zeng and ceng, 长孙 zhang
# sun, 万俟 mo qi), and anyone by ü typed as v or as u (吕 lv and lu). The people (and institutions) whose names
# read so get their pinyin key and search terms again; every other name's terms are unchanged. No schema change.
from django.db import migrations


def reindex(apps, schema_editor):
    from pharmacrm.customers import normalise, readings, search

    SearchTerm = apps.get_model("customers", "SearchTerm")

    def affected(text: str, person: bool) -> bool:
        """Whether the name has another reading than its own now (its terms grew), or its own changed (长孙, 万俟 and
        the surnames whose reading was not known before: their sort key too)."""
        norm = normalise.name(text or "")
        if not norm or not readings._CJK.search(norm):
            return False
        if person and norm[:2] in readings.COMPOUND_SURNAME_READINGS:
            return True
        return len(search._readings(norm, person)) > 1

    for label, kind, columns, make, person in (
        ("Institution", search.INSTITUTION, ("id", "name", "short_name"), search.institution_terms, False),
        ("Person", search.PERSON, ("id", "name"), search.person_terms, True),
    ):
        model = apps.get_model("customers", label)
        found = [
            row[0] for row in model.objects.order_by().values_list(*columns).iterator(chunk_size=20_000)
            if any(affected(text, person) for text in row[1:])
        ]
        for start in range(0, len(found), 500):
            part = found[start : start + 500]
            terms = []
            for obj in model.objects.filter(pk__in=part):
                # the sort key reads the surname's reading (长孙 zhang sun, no longer chang sun)
                model.objects.filter(pk=obj.pk).update(name_key=readings.name_key(obj.name, person=person))
                if obj.merged_into_id is not None:
                    continue
                number = search.province_number(obj.province)
                terms += [SearchTerm(term=t, kind=kind, obj_id=obj.pk, province=number) for t in make(obj)]
            SearchTerm.objects.filter(kind=kind, obj_id__in=part).delete()
            SearchTerm.objects.bulk_create(terms, batch_size=2000)


class Migration(migrations.Migration):
    dependencies = [("customers", "0020_import_job_last_sheet")]

    operations = [migrations.RunPython(reindex, migrations.RunPython.noop, elidable=True)]
