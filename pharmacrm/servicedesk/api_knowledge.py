"""REST endpoints: knowledge."""

from __future__ import annotations


def register(router) -> None:
    """Called by pharmacrm/api_urls.py with the v1 router."""
