"""Web pages of cooperation agreements and projects (/cooperation/)."""

from .views import app_name, urlpatterns  # noqa: F401
