"""E-mail addresses are compared with their domain in Unicode (core.addresses.canonical): a record whose address
was stored with a punycode domain (wang@xn--55qx5d.cn) gets the blind index of wang@公司.cn, so that a mail or a
search with either spelling finds it. Only such rows change; each stored address is decrypted once."""

from django.db import migrations

BATCH = 5000


def forwards(apps, schema_editor):
    from pharmacrm.core import crypto
    from pharmacrm.customers import normalise

    Person = apps.get_model("customers", "Person")
    last = 0
    while True:
        rows = list(
            Person.objects.filter(pk__gt=last).exclude(email_bidx="").order_by("pk")
            .values_list("pk", "email", "email_bidx")[:BATCH]
        )  # fmt: skip
        if not rows:
            return
        last = rows[-1][0]
        changed = []
        for pk, value, bidx in rows:
            if value and "xn--" in value.lower():
                new = crypto.blind_index(normalise.email(value), "email")
                if new != bidx:
                    changed.append(Person(pk=pk, email_bidx=new))
        if changed:
            Person.objects.bulk_update(changed, ["email_bidx"])


class Migration(migrations.Migration):
    dependencies = [
        ("customers", "0017_person_inst_name_covers_id"),
    ]

    operations = [migrations.RunPython(forwards, migrations.RunPython.noop)]
