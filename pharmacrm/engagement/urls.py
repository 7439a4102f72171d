"""Web pages for interactions (/interactions/)."""

from django.urls import path

from . import views

app_name = "engagement"
urlpatterns = [
    path("", views.interaction_list, name="interactions"),
    path("new/", views.interaction_create, name="interaction-create"),
    path("follow-ups/", views.follow_ups, name="follow-ups"),
    path("birthdays/", views.birthdays, name="birthdays"),
    path("<int:pk>/", views.interaction_detail, name="interaction"),
]
