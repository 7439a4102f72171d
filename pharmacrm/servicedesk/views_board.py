"""Service-desk pages: board."""

from __future__ import annotations

urlpatterns: list = []  # included by urls.py under /service/


def panel_context(request, ticket) -> dict:
    """Extra context for the ticket page (merged by views._ticket_context)."""
    return {}
