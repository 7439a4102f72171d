"""Key-account evaluations stored before session 31 still count the time a ticket waited on the customer in their
average response and resolution times (session 31 changed the rule, not the stored figures): an account whose
customer took a week to send a batch number kept a resolution a week longer than the desk's own clock said, and a
score to match. They are recomputed once by `pharmacrm reviews recompute-waits` — the command an operator can run
by hand at any time: one already right is left as it is.

The command works with today's models (the service desk's clocks and history), so it must not run in the middle of
a migration plan (a later migration of any app may add a column those models read). This migration only notes that
there is work to do; the key-accounts app's post_migrate handler runs the command once `migrate` has applied
everything (pharmacrm.keyaccounts.apps), as safety 0008 does."""

from django.db import migrations
from django.db.models import Q


def note_recompute(apps, schema_editor):
    # the historical model only asks whether there is anything to do
    AccountReview = apps.get_model("keyaccounts", "AccountReview")
    stored = AccountReview.objects.using(schema_editor.connection.alias)
    if stored.filter(Q(avg_response_hours__isnull=False) | Q(avg_resolution_hours__isnull=False)).exists():
        from pharmacrm.keyaccounts import apps as keyaccounts_apps

        keyaccounts_apps.RECOMPUTE_AFTER_MIGRATE.add(schema_editor.connection.alias)


class Migration(migrations.Migration):
    dependencies = [
        ("keyaccounts", "0014_tenure_from_audit"),
    ]

    operations = [migrations.RunPython(note_recompute, migrations.RunPython.noop, elidable=True)]
