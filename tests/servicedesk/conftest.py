"""Fixtures shared by the service-desk tests."""

from tests.api.conftest import api_for  # noqa: F401  (token clients per role)
