"""REST API v1 routes."""

from django.urls import include, path
from rest_framework.routers import DefaultRouter

from pharmacrm.cooperation import api as cooperation_api
from pharmacrm.core import api as core_api
from pharmacrm.customers import api as customers_api
from pharmacrm.engagement import api as engagement_api
from pharmacrm.engagement import api_channels as engagement_channels
from pharmacrm.keyaccounts import api_eval as keyaccounts_eval_api
from pharmacrm.keyaccounts import api_programme as keyaccounts_programme_api
from pharmacrm.licences import api as licences_api
from pharmacrm.loyalty import api as loyalty_api
from pharmacrm.market import api as market_api
from pharmacrm.notify import api as notify_api
from pharmacrm.reports import api as reports_api
from pharmacrm.safety import api as safety_api
from pharmacrm.sales import api as sales_api
from pharmacrm.servicedesk import api as servicedesk_api
from pharmacrm.servicedesk import (
    api_campaigns,
    api_complaints,
    api_conversation,
    api_knowledge,
    api_links,
    api_performance,
    api_quality,
    api_revisit,
    api_routing,
)
from pharmacrm.training import api as training_api


class Router(DefaultRouter):
    """Record ids in URLs are ASCII digits. DRF's default pattern ([^/.]+) let "１２" (full-width) or "١٢"
    (Arabic-Indic) through to int(), which opened record 12; a viewset with keys of another shape sets its
    own lookup_value_regex."""

    def get_lookup_regex(self, viewset, lookup_prefix=""):
        if getattr(viewset, "lookup_value_regex", None) is None and getattr(viewset, "lookup_field", "pk") in ("pk", "id"):  # noqa: E501
            kwarg = getattr(viewset, "lookup_url_kwarg", None) or getattr(viewset, "lookup_field", "pk")
            return f"(?P<{lookup_prefix}{kwarg}>[0-9]{{1,18}})"
        return super().get_lookup_regex(viewset, lookup_prefix)


router = Router()
router.register("institutions", customers_api.InstitutionViewSet, basename="institution")
router.register("people", customers_api.PersonViewSet, basename="person")
router.register("consents", customers_api.ConsentViewSet, basename="consent")
router.register("audit", core_api.AuditEntryViewSet, basename="audit")
router.register("users", core_api.UserViewSet, basename="user")
router.register("roles", core_api.RoleViewSet, basename="role")
router.register("regions", customers_api.RegionViewSet, basename="region")
router.register("tickets", servicedesk_api.TicketViewSet, basename="ticket")
router.register("ticket-categories", servicedesk_api.TicketCategoryViewSet, basename="ticket-category")
router.register("sla-policies", servicedesk_api.SlaPolicyViewSet, basename="sla-policy")
router.register("calendars", servicedesk_api.BusinessCalendarViewSet, basename="calendar")
router.register("escalation-rules", servicedesk_api.EscalationRuleViewSet, basename="escalation-rule")
# key-account identification before the key-account files: /keyaccounts/candidates/ is not an account id
for _module in (api_campaigns, api_complaints, api_conversation, api_knowledge, api_links, api_performance, api_quality,
                api_revisit, api_routing, notify_api, reports_api, safety_api,
                engagement_api, sales_api, keyaccounts_eval_api, keyaccounts_programme_api, cooperation_api, training_api,
                loyalty_api, licences_api, market_api):
    _module.register(router)

urlpatterns = [
    path("auth/token/", core_api.TokenView.as_view(), name="api-token"),
    path("search/", customers_api.SearchView.as_view(), name="api-search"),
    path("imports/", customers_api.ImportCreateView.as_view(), name="api-imports"),
    path("imports/<int:pk>/", customers_api.ImportDetailView.as_view(), name="api-import"),
    path("export/<str:target>.<str:fmt>", customers_api.ExportView.as_view(), name="api-export"),
    path("safety/", include(safety_api.urlpatterns)),
    path("sales/", include(sales_api.urlpatterns)),
    path("keyaccounts/", include(keyaccounts_eval_api.urlpatterns + keyaccounts_programme_api.urlpatterns)),
    path("", include(engagement_channels.urlpatterns)),
    path("", include(router.urls)),
]
