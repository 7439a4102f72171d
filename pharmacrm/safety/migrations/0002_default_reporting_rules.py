from django.db import migrations


def install(apps, schema_editor):
    from pharmacrm.safety.setup import install_rules

    install_rules(apps.get_model("safety", "ReportingRule"))


class Migration(migrations.Migration):
    dependencies = [("safety", "0001_initial")]
    operations = [migrations.RunPython(install, migrations.RunPython.noop)]
