"""Cases saved before the minimum criteria followed ICH E2D / GVP VI.B.2 / 个例药品不良反应收集和报告指导原则 (a reporter
identifiable by their qualification, a patient by a record number) kept "invalid" and had no regulatory clock until
their next edit. They are revalidated once by `pharmacrm safety revalidate`: the same service function an operator
runs by hand, which plans the clocks as saving the case does, from the receipt the criteria were first known with.

The command works with today's models, so it must not run in the middle of a migration plan (a later migration of
any app may add a column those models read). This migration only notes that there is work to do; the safety app's
post_migrate handler runs the command once `migrate` has applied everything (pharmacrm.safety.apps)."""

from django.db import migrations


def note_revalidation(apps, schema_editor):
    # the historical model only asks whether there is anything to do
    SafetyCase = apps.get_model("safety", "SafetyCase")
    if SafetyCase.objects.using(schema_editor.connection.alias).filter(valid=False).exists():
        from pharmacrm.safety import apps as safety_apps

        safety_apps.REVALIDATE_AFTER_MIGRATE.add(schema_editor.connection.alias)


class Migration(migrations.Migration):
    dependencies = [
        ("safety", "0007_case_literature"),
        ("core", "0011_user_session_salt"),
    ]

    operations = [migrations.RunPython(note_revalidation, migrations.RunPython.noop, elidable=True)]
