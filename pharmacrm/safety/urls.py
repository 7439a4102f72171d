"""Web pages of the safety and quality area (/safety/). Each views module owns its own routes."""

from . import views_cases, views_triage

app_name = "safety"
urlpatterns = [*views_cases.urlpatterns, *views_triage.urlpatterns]
