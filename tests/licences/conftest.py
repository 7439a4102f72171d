"""Fixtures of the licence tests: the API's token clients per role."""

from tests.api.conftest import api_for  # noqa: F401
