"""Notifications: the in-app bell, e-mail by SMTP and signed outbound webhooks (企业微信 / 钉钉 bots)."""

from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class NotifyConfig(AppConfig):
    name = "pharmacrm.notify"
    label = "notify"
    verbose_name = _("Notifications")

    def ready(self) -> None:
        from . import signals  # noqa: F401  (ticket events → outbound webhooks)
