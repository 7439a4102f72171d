"""Purchases API (stub)."""

urlpatterns = []


def register(router) -> None:
    pass
