"""OpenAPI schema helpers (apart from api_utils, which DRF's settings import while drf-spectacular's schema
module would import DRF's settings)."""

from __future__ import annotations

from drf_spectacular.openapi import AutoSchema


class OneObjectSchema(AutoSchema):
    """The schema of a viewset whose list action answers one summary object (the supervisor board, the
    safety reconciliation), which drf-spectacular would otherwise document as an array of them."""

    def _is_list_view(self, serializer=None) -> bool:
        return False
