"""The requester's language on each ticket (Ticket.language): the desk wrote its acknowledgements, status links and
survey mails, and showed the survey page, in Simplified Chinese to a requester who wrote in Traditional Chinese or
English. The tickets taken in before are in Simplified Chinese (the field's default), except those of a person whose
record names a preferred language: the desk already wrote to them in it (mail.customer_language), and goes on."""

from django.db import migrations, models


def from_the_people(apps, schema_editor):
    Ticket = apps.get_model("servicedesk", "Ticket")
    Person = apps.get_model("customers", "Person")
    for code in ("en", "zh-hant"):
        people = Person.objects.filter(preferred_language=code).values("pk")
        Ticket.objects.filter(person__in=people).update(language=code)


class Migration(migrations.Migration):

    dependencies = [
        ('servicedesk', '0027_generated_action_texts'),
        ('customers', '0019_person_preferred_language'),
    ]

    operations = [
        migrations.AddField(
            model_name='ticket',
            name='language',
            field=models.CharField(choices=[('zh-hans', 'Simplified Chinese'), ('en', 'English'), ('zh-hant', 'Traditional Chinese')], default='zh-hans', max_length=8, verbose_name="customer's language"),
        ),
        migrations.RunPython(from_the_people, migrations.RunPython.noop),
    ]
