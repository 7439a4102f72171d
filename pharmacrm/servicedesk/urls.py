"""Service-desk pages: queues, intake, the ticket page and its actions."""

from django.urls import path

from . import (
    views,
    views_board,
    views_campaigns,
    views_complaints,
    views_conversation,
    views_escalation,
    views_knowledge,
    views_links,
    views_performance,
    views_quality,
    views_revisit,
    views_settings,
    views_settings_calendars,
)

app_name = "servicedesk"

urlpatterns = [
    path("", views.queue, name="queue"),
    path("new/", views.ticket_create, name="ticket-create"),
    path("tickets/<int:pk>/", views.ticket_detail, name="ticket"),
    path("tickets/<int:pk>/caller/reveal/", views.caller_reveal, name="ticket-caller-reveal"),
    path("tickets/<int:pk>/status/", views.ticket_status, name="ticket-status"),
    path("tickets/<int:pk>/respond/", views.ticket_respond, name="ticket-respond"),
    path("tickets/<int:pk>/priority/", views.ticket_priority, name="ticket-priority"),
    path("tickets/<int:pk>/assign/", views.ticket_assign, name="ticket-assign"),
]

# each feature module keeps its own routes
for _module in (
    views_conversation,
    views_knowledge,
    views_links,
    views_performance,
    views_quality,
    views_complaints,
    views_revisit,
    views_campaigns,
    views_board,
    views_escalation,
    views_settings,
    views_settings_calendars,
):
    urlpatterns += _module.urlpatterns
