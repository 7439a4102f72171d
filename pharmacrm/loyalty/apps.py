from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class LoyaltyConfig(AppConfig):
    name = "pharmacrm.loyalty"
    label = "loyalty"
    verbose_name = _("Loyalty programme and referrals")

    def ready(self):
        from pharmacrm.customers import services as customers
        from pharmacrm.servicedesk import routing

        from . import services

        routing.register_boost(services.ticket_boost)
        from pharmacrm.core import builtin

        from .models import SHIPPED_REWARDS

        builtin.register(SHIPPED_REWARDS)  # the demo catalogue's rewards
        customers.merged.connect(services.rerate_after_merge, dispatch_uid="loyalty-merge-rerate")
