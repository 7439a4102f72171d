from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class EngagementConfig(AppConfig):
    name = "pharmacrm.engagement"
    label = "engagement"
    verbose_name = _("Engagement")

    def ready(self):
        from pharmacrm.customers import services as customers

        from . import playbook

        customers.stage_changed.connect(playbook.on_stage_changed, dispatch_uid="engagement-stage-tasks")
        customers.merged.connect(playbook.on_merged, dispatch_uid="engagement-stage-merge")
        customers.owner_changed.connect(playbook.on_owner_changed, dispatch_uid="engagement-stage-owner")
