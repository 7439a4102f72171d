"""Web pages for evaluation and the key-account programme (/keyaccounts/)."""

from . import views_eval, views_programme

app_name = "keyaccounts"
urlpatterns = views_eval.urlpatterns + views_programme.urlpatterns
