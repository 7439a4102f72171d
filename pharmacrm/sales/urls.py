"""Web pages for purchases (/sales/)."""

from . import views, views_clv, views_kpi, views_pipeline, views_splits, views_targets

app_name = "sales"
urlpatterns = views.urlpatterns + views_splits.urlpatterns + views_targets.urlpatterns + views_pipeline.urlpatterns + views_clv.urlpatterns + views_kpi.urlpatterns
