"""Fixtures shared by the core tests."""

import pytest

from pharmacrm.core import crypto
from tests.api.conftest import api_for  # noqa: F401  (token clients per role)


@pytest.fixture
def own_keyring(tmp_path, settings, monkeypatch):
    """A key-ring file of the test's own, so rotating never touches the ring other tests use."""
    monkeypatch.delenv("PHARMACRM_KEYRING_FILE", raising=False)
    monkeypatch.delenv("PHARMACRM_KEYRING", raising=False)
    original = crypto.keyring()
    path = tmp_path / "keyring.json"
    path.write_text(original.to_json())
    settings.PHARMACRM_KEYRING_PATH = path
    crypto.install_keyring(original, persist=False)
    yield path
    crypto.install_keyring(original, persist=False)
