"""Public pages for customers (no sign-in): the web form, ticket status links, revisit surveys."""

from django.urls import path  # noqa: F401

app_name = "public"

urlpatterns: list = []
