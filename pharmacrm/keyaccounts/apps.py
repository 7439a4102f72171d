from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class KeyAccountsConfig(AppConfig):
    name = "pharmacrm.keyaccounts"
    label = "keyaccounts"
    verbose_name = _("Key accounts and evaluation")

    def ready(self):
        from . import hooks

        hooks.register()
