"""`pharmacrm undelivered-replies`: record the replies whose e-mail delivery failed for good before session 37.

Such a reply has no 'Reply not delivered' entry and still counts as its ticket's first response. Each gets the
treatment of a failure today (services.backfill_undelivered): the entry, audited; on an open ticket the first
response computed again without it; a resolved or closed ticket keeps the first response it was judged with. A
reply already recorded is left as it is, so the command can be run again at any time (the second run changes
nothing). Run once by `migrate` (servicedesk 0016); docs/servicedesk.md."""

from __future__ import annotations

from django.core.management.base import BaseCommand
from django.utils.translation import gettext as _

from pharmacrm.servicedesk import services


class Command(BaseCommand):
    help = "Record the replies whose e-mail delivery failed for good before such failures were recorded."

    def handle(self, *args, **options):
        counts = services.backfill_undelivered()
        self.stdout.write(_(
            "%(recorded)d reply(ies) recorded as not delivered: %(withdrawn)d no longer meet their ticket's first "
            "response, %(kept)d on resolved or closed tickets keep it as judged."
        ) % counts)
