"""Public pages for customers (no sign-in): the web form, its personal information notice,
ticket status links, revisit surveys."""

from django.urls import path

from . import views_public

app_name = "public"

urlpatterns: list = [
    path("", views_public.web_form, name="form"),
    path("privacy/", views_public.privacy, name="privacy"),
    path("received/<str:token>/", views_public.received, name="received"),
    path("status/<str:token>/", views_public.status, name="status"),
    path("status/<str:token>/files/<int:pk>/", views_public.reply_file, name="reply-file"),
    path("survey/<str:token>/", views_public.survey, name="survey"),
]
