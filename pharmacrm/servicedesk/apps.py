"""The service desk: tickets, SLA clocks on China's working calendar, escalation, the closed loop."""

import io

from django.apps import AppConfig
from django.db.models.signals import post_migrate, pre_delete
from django.utils.translation import gettext_lazy as _

# databases whose migration 0016 found replies that failed for good, perhaps before such failures were recorded:
# given their 'Reply not delivered' entry once the whole `migrate` is done, when today's models match the tables
BACKFILL_AFTER_MIGRATE: set[str] = set()


def backfill_after_migrate(sender, using: str = "default", **kwargs) -> None:
    if using not in BACKFILL_AFTER_MIGRATE:
        return
    from django.core.management import call_command

    # each ticket in its own transaction; killed half-way, the command is simply run again
    # (`pharmacrm undelivered-replies`, docs/operations.md): a reply already recorded is left as it is
    call_command("undelivered_replies", stdout=kwargs.get("stdout") or io.StringIO())
    BACKFILL_AFTER_MIGRATE.discard(using)


class ServiceDeskConfig(AppConfig):
    name = "pharmacrm.servicedesk"
    label = "servicedesk"
    verbose_name = _("Service desk")

    def ready(self) -> None:
        from pharmacrm.core import builtin

        from .setup import shipped_names

        builtin.register(shipped_names())
        post_migrate.connect(
            backfill_after_migrate, sender=self, dispatch_uid="servicedesk.backfill_after_migrate"
        )
        # a person deleted on request leaves no address in the survey campaigns' rows (campaigns.forget_person)
        from . import campaigns

        pre_delete.connect(campaigns.forget_person, sender="customers.Person", dispatch_uid="servicedesk.forget-person")
