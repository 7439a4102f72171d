"""Notification pages, under /notifications/."""

from django.urls import path

from . import views

app_name = "notify"

urlpatterns = [
    path("", views.inbox, name="inbox"),
    path("bell/", views.bell, name="bell"),
    path("read/", views.mark_read, name="mark-read"),
    path("<int:pk>/open/", views.open_notification, name="open"),
    path("mail/<str:token>/", views.open_from_mail, name="mail-open"),
    path("webhooks/", views.endpoints, name="endpoints"),
    path("webhooks/new/", views.endpoint_create, name="endpoint-create"),
    path("webhooks/<int:pk>/", views.endpoint_edit, name="endpoint-edit"),
    path("webhooks/<int:pk>/deactivate/", views.endpoint_deactivate, name="endpoint-deactivate"),
    path("webhooks/<int:pk>/test/", views.endpoint_test, name="endpoint-test"),
    path("deliveries/", views.deliveries, name="deliveries"),
    path("deliveries/<int:pk>/retry/", views.delivery_retry, name="delivery-retry"),
]
