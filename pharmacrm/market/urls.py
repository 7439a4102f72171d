"""Web pages of market information and competitor analysis (/market/)."""

from .views import app_name, urlpatterns  # noqa: F401
