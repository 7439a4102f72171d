from django.db import migrations

from pharmacrm.servicedesk.setup import ensure_escalation_rules


def forwards(apps, schema_editor):
    ensure_escalation_rules(apps.get_model("servicedesk", "EscalationRule"))


class Migration(migrations.Migration):
    dependencies = [("servicedesk", "0008_knowledge_conversation_escalation_revisit")]

    operations = [migrations.RunPython(forwards, migrations.RunPython.noop)]
