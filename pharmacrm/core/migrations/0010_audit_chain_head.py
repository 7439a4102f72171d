"""The audit chain's head exists before the first entry: created by the first entry, two first entries at once
both found none and the second failed on the duplicate (PostgreSQL), losing the change it recorded."""

from django.db import migrations


def create_head(apps, schema_editor):
    from pharmacrm.core.setup import ensure_audit_head

    ensure_audit_head(apps.get_model("core", "AuditChainHead"))


class Migration(migrations.Migration):
    dependencies = [("core", "0009_audit_indexes_once")]

    operations = [migrations.RunPython(create_head, migrations.RunPython.noop)]
