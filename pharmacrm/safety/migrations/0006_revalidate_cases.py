"""Cases saved before the minimum criteria followed ICH E2D / GVP VI.B.2 / 个例药品不良反应收集和报告指导原则 (a reporter
identifiable by their qualification, a patient by a record number) kept "invalid" and had no regulatory clock until
their next edit. This runs `pharmacrm safety revalidate` once: the same service function an operator runs by hand,
which plans the clocks as saving the case does, from the receipt the criteria were first known with."""

import io

from django.core.management import call_command
from django.db import migrations


def revalidate(apps, schema_editor):
    # the historical model only asks whether there is anything to do: a new database (or one without such a case)
    # never reaches the services, whose models are the current ones
    SafetyCase = apps.get_model("safety", "SafetyCase")
    if not SafetyCase.objects.using(schema_editor.connection.alias).filter(valid=False).exists():
        return
    call_command("safety", "revalidate", stdout=io.StringIO())


class Migration(migrations.Migration):
    # each case in its own transaction (the command's chunks), not the whole table locked until the migration ends
    atomic = False

    dependencies = [
        ("safety", "0005_handoff_clock_calendar"),
        ("core", "0011_user_session_salt"),
    ]

    operations = [migrations.RunPython(revalidate, migrations.RunPython.noop, elidable=True)]
