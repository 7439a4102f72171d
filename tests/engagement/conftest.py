"""Fixtures for interaction tests: the API's token clients per role."""

from tests.api.conftest import anon, api_for  # noqa: F401  (token clients per role, for test_api.py)
