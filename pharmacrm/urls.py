"""URL map: web pages, the REST API under /api/v1/, and its OpenAPI schema and docs."""

from django.conf import settings
from django.urls import include, path, re_path
from django.views.generic.base import RedirectView
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from pharmacrm.core import views as core_views

urlpatterns = [
    path("", core_views.home, name="home"),
    re_path(r"^healthz/?$", core_views.healthz, name="healthz"),  # a probe configured with the slash finds it too
    path("favicon.ico", RedirectView.as_view(url="/" + settings.STATIC_URL.lstrip("/") + "img/favicon.svg")),
    path("accounts/", include("pharmacrm.core.urls")),
    path("i18n/setlang/", core_views.set_language, name="set_language"),
    path("customers/", include("pharmacrm.customers.urls")),
    path("service/", include("pharmacrm.servicedesk.urls")),
    path("help/", include("pharmacrm.servicedesk.public_urls")),
    path("notifications/", include("pharmacrm.notify.urls")),
    path("safety/", include("pharmacrm.safety.urls")),
    path("interactions/", include("pharmacrm.engagement.urls")),
    path("reports/", include("pharmacrm.reports.views")),
    path("sales/", include("pharmacrm.sales.urls")),
    path("keyaccounts/", include("pharmacrm.keyaccounts.urls")),
    path("cooperation/", include("pharmacrm.cooperation.urls")),
    path("training/", include("pharmacrm.training.urls")),
    path("loyalty/", include("pharmacrm.loyalty.urls")),
    path("licences/", include("pharmacrm.licences.urls")),
    path("market/", include("pharmacrm.market.urls")),
    path("api/v1/", include("pharmacrm.api_urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    # a page to read: OPTIONS (a scanner's, a browser's preflight) asked its template-less renderer for a description
    # and answered anyone with a server error; it is refused as any other method the page does not take
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema", http_method_names=["get", "head"]),
         name="api-docs"),  # fmt: skip
]

# Errors: the pages (403 with the reason our code gave), JSON {"detail": …} under /api/ as DRF's own errors.
handler400 = "pharmacrm.core.views.bad_request"
handler403 = "pharmacrm.core.views.permission_denied"
handler404 = "pharmacrm.core.views.page_not_found"
handler500 = "pharmacrm.core.views.server_error"
