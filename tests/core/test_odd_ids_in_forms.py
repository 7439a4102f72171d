"""Forms that choose several records by id (a user's teams, an agent's skills and products): a value that is no
database integer ("²", twenty nines) is refused with the field's error, as any unknown value is, instead of failing
the query with a 500 (found by the UI QA crawl)."""

from __future__ import annotations

import pytest

from pharmacrm.servicedesk import routing
from pharmacrm.servicedesk.models import AgentProfile
from tests.servicedesk.test_qa_round15 import _posted

pytestmark = pytest.mark.django_db

ODD = ["²", "99999999999999999999"]


@pytest.mark.parametrize("odd", ODD)
def test_a_user_with_an_odd_team_names_the_field(users, client_for, odd):
    url = f"/accounts/users/{users['kam'].pk}/"
    admin = client_for("admin")
    data = {**_posted(admin.get(url).context["form"]), "teams": [odd]}
    response = admin.post(url, data)
    assert response.status_code in (200, 400)  # the form again, with its errors
    assert "teams" in response.context["form"].errors
    assert not users["kam"].teams.exists() or odd not in {str(t.pk) for t in users["kam"].teams.all()}


@pytest.mark.parametrize("odd", ODD)
def test_an_agent_profile_with_an_odd_skill_or_product_names_the_field(users, client_for, odd):
    routing.save_profile(users["admin"], users["agent"], {"on_duty": True, "max_open": 40})
    url = f"/service/assignment/agents/{users['agent'].pk}/"
    admin = client_for("admin")
    for field in ("skills", "products"):
        data = {**_posted(admin.get(url).context["form"]), "max_open": "17", field: [odd]}
        response = admin.post(url, data)
        assert response.status_code == 400, field
        assert field in response.context["form"].errors
    assert AgentProfile.objects.get(user=users["agent"]).max_open == 40
