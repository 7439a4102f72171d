from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class SalesConfig(AppConfig):
    name = "pharmacrm.sales"
    label = "sales"
    verbose_name = _("Sales")

    def ready(self):
        from . import hooks

        hooks.register()
