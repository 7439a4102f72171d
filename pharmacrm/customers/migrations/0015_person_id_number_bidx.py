"""People get a blind index of their ID card number (身份证号), so that two records with the same number are
found as likely duplicates without decrypting anyone's. The back-fill decrypts each stored number once."""

from django.db import migrations, models

BATCH = 5000


def backfill(apps, schema_editor):
    from pharmacrm.core import crypto
    from pharmacrm.customers import normalise

    Person = apps.get_model("customers", "Person")
    last = 0
    while True:
        rows = list(Person.objects.filter(pk__gt=last).order_by("pk").values_list("pk", "id_number")[:BATCH])
        if not rows:
            return
        last = rows[-1][0]
        filled = [
            Person(pk=pk, id_number_bidx=crypto.blind_index(normalise.credit_code(value), "id_number"))
            for pk, value in rows
            if value
        ]
        if filled:
            Person.objects.bulk_update(filled, ["id_number_bidx"])


class Migration(migrations.Migration):

    dependencies = [
        ("customers", "0014_distinct_pairs"),
    ]

    operations = [
        migrations.AddField(
            model_name="person",
            name="id_number_bidx",
            field=models.CharField(blank=True, db_index=True, editable=False, max_length=32),
        ),
        migrations.RunPython(backfill, migrations.RunPython.noop),
    ]
