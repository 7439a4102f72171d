"""The service desk: tickets, SLA clocks on China's working calendar, escalation, the closed loop."""

from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class ServiceDeskConfig(AppConfig):
    name = "pharmacrm.servicedesk"
    label = "servicedesk"
    verbose_name = _("Service desk")

    def ready(self) -> None:
        from pharmacrm.core import builtin

        from .setup import shipped_names

        builtin.register(shipped_names())
