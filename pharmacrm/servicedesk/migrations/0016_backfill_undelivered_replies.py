"""Replies whose e-mail delivery failed for good before session 37 (stored as 'Failed for good': every attempt
refused, the address taken off the ticket, no SMTPUTF8, or returned by the customer's server) have no 'Reply not
delivered' entry (0015) and still count as their ticket's first response. They get the treatment of a failure today
(services.backfill_undelivered): the entry, audited, and on an open ticket the first-response clock computed again
without that reply. A resolved or closed ticket keeps the first response it was judged with (closed records are
frozen, session 37): the entry is recorded and says so.

That work uses today's models and the live clock rules (services.rebuild_clocks), so it must not run in the middle
of a migration plan (a later migration of any app may add a column those models read). This migration only notes
that there is work to do; the service desk's post_migrate handler runs it once `migrate` has applied everything
(pharmacrm.servicedesk.apps), as keyaccounts 0015 does. `pharmacrm undelivered-replies` runs it by hand."""

from django.db import migrations


def note_backfill(apps, schema_editor):
    # the historical model only asks whether there is anything to do
    TicketMessage = apps.get_model("servicedesk", "TicketMessage")
    stored = TicketMessage.objects.using(schema_editor.connection.alias)
    if stored.filter(kind="reply", delivery="gave_up").exists():
        from pharmacrm.servicedesk import apps as servicedesk_apps

        servicedesk_apps.BACKFILL_AFTER_MIGRATE.add(schema_editor.connection.alias)


class Migration(migrations.Migration):
    dependencies = [
        ("servicedesk", "0015_reply_not_delivered"),
    ]

    operations = [migrations.RunPython(note_backfill, migrations.RunPython.noop, elidable=True)]
