"""Web pages of the training system (/training/)."""

from .views import app_name, urlpatterns  # noqa: F401
