from django.db import migrations

from pharmacrm.servicedesk.setup import ensure_service_defaults


def create(apps, schema_editor):
    ensure_service_defaults(
        apps.get_model("servicedesk", "BusinessCalendar"),
        apps.get_model("servicedesk", "TicketCategory"),
        apps.get_model("servicedesk", "SlaPolicy"),
    )


class Migration(migrations.Migration):
    dependencies = [("servicedesk", "0003_tickets_and_clocks")]
    operations = [migrations.RunPython(create, migrations.RunPython.noop)]
