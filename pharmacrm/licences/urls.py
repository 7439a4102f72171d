"""Web pages of customers' licences (/licences/)."""

from .views import app_name, urlpatterns  # noqa: F401
