"""A region code that cannot be one — a NUL character in it, letters, a hundred digits — is the field's own "no such
region" message (400), not a server error: PostgreSQL refuses NUL characters even in a look-up (found by the schema
fuzz on PATCH /api/v1/institutions/{id}/ and /api/v1/assignment-rules/{id}/)."""

from __future__ import annotations

import pytest


@pytest.mark.parametrize("code", ["11\x000105", "abc", "1" * 100])
def test_an_institution_s_region_that_cannot_be_a_code_is_named(code, xiehe, api_for):
    answer = api_for("admin", lang="en").patch(f"/api/v1/institutions/{xiehe.pk}/", {"region": code}, format="json",
                                               HTTP_IF_MATCH=f'"{xiehe.version}"')  # fmt: skip
    assert answer.status_code == 400, answer.content
    assert "region" in answer.json()
    xiehe.refresh_from_db()
    assert xiehe.region.code != code


def test_a_user_s_territory_with_a_nul_character_is_named(users, api_for):
    answer = api_for("admin", lang="en").patch(f"/api/v1/users/{users['rep'].pk}/", {"territory": ["11\x00"]},
                                               format="json")  # fmt: skip
    assert answer.status_code == 400 and "territory" in answer.json()


def test_an_assignment_rule_s_region_with_a_nul_character_is_named(users, api_for):
    from pharmacrm.core.models import Team
    from pharmacrm.servicedesk.models import AssignmentRule

    rule = AssignmentRule.objects.create(name="华北", team=Team.objects.get_or_create(name="华北团队")[0])
    answer = api_for("admin", lang="en").patch(f"/api/v1/assignment-rules/{rule.pk}/",
                                               {"region": "E\x00å", "version": rule.version}, format="json")  # fmt: skip
    assert answer.status_code == 400 and "region" in answer.json()
