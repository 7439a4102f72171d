"""A user holding the auditor role together with any other role reads, and writes nothing (found by QA in session 56:
six write capabilities were missing from the list a read-only role strips, so an administrator who was also auditor
could record competitors and change the stage playbook through the API)."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from pharmacrm.core import access
from pharmacrm.core.roles import MATRIX, Cap, Role
from tests.api.conftest import token_for
from tests.conftest import new_user

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("other", [r for r in Role if r != Role.AUDITOR], ids=lambda r: r.value)
def test_the_auditor_role_with_any_other_has_the_auditors_capabilities_only(other):
    auditor = new_user("just-auditor", Role.AUDITOR)
    both = new_user(f"auditor-and-{other.value}", Role.AUDITOR, other)
    assert access.capabilities(both) == access.capabilities(auditor)
    assert all(access.can(both, cap) == access.can(auditor, cap) for cap in Cap)
    # and none of what the auditor alone may not do and the other role may (every write among them)
    assert not any(access.can(both, cap) for cap in Cap if other in MATRIX[cap] and not access.can(auditor, cap))


def test_an_administrator_who_is_also_auditor_records_no_competitor_through_the_api():
    both = new_user("admin-auditor", Role.ADMIN, Role.AUDITOR)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token_for(both)}", HTTP_ACCEPT_LANGUAGE="en")
    r = client.post("/api/v1/market/competitors/", {"name": "审计员新建的竞品公司"}, format="json")
    assert r.status_code == 403
    assert client.get("/api/v1/market/competitors/").status_code == 200  # reading stays
