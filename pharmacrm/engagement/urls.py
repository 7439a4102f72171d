"""Web pages for interactions (/interactions/)."""

from django.urls import path

from . import views, views_channels, views_lifecycle

app_name = "engagement"
urlpatterns = [
    path("", views.interaction_list, name="interactions"),
    path("new/", views.interaction_create, name="interaction-create"),
    path("follow-ups/", views.follow_ups, name="follow-ups"),
    path("birthdays/", views.birthdays, name="birthdays"),
    path("plans/", views.plan_list, name="plans"),
    path("plans/new/", views.plan_edit, name="plan-create"),
    path("plans/<int:pk>/", views.plan_edit, name="plan"),
    path("plans/<int:pk>/delete/", views.plan_delete, name="plan-delete"),
    path("plan-due/", views.plan_due, name="plan-due"),
    path("<int:pk>/", views.interaction_detail, name="interaction"),
    *views_lifecycle.urlpatterns,
    *views_channels.urlpatterns,
]
