"""Web pages for purchases (/sales/)."""

from . import views

app_name = "sales"
urlpatterns = views.urlpatterns
