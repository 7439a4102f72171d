from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class SafetyConfig(AppConfig):
    name = "pharmacrm.safety"
    label = "safety"
    verbose_name = _("Safety and quality")

    def ready(self) -> None:
        from pharmacrm.core import builtin

        from .setup import shipped_names

        chinese, english = shipped_names()
        builtin.register(chinese)
        builtin.register(english, language="en")
