from django.db import migrations

from pharmacrm.servicedesk.setup import DEFAULT_CALENDARS, ensure_calendars


def create(apps, schema_editor):
    ensure_calendars(apps.get_model("servicedesk", "BusinessCalendar"))


def remove(apps, schema_editor):
    codes = [c["code"] for c in DEFAULT_CALENDARS]
    apps.get_model("servicedesk", "BusinessCalendar").objects.filter(code__in=codes).delete()


class Migration(migrations.Migration):
    dependencies = [("servicedesk", "0001_business_calendars")]
    operations = [migrations.RunPython(create, remove)]
