"""REST API of the safety area under /api/v1/safety/ (owned by the API helper)."""

urlpatterns: list = []


def register(router) -> None:
    """Viewsets on the shared router (prefix "safety/…")."""
