"""Web pages of the loyalty programme (/loyalty/)."""

from .views import app_name, urlpatterns  # noqa: F401
