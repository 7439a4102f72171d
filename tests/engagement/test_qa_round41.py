"""Forty-first session, interactions as a KAM reads them on the pages."""

from __future__ import annotations

import pytest

from pharmacrm.core.roles import Role
from pharmacrm.customers import services as customers
from pharmacrm.customers.models import Institution
from pharmacrm.engagement import services

ROLES = [r.value for r in Role]


@pytest.mark.parametrize("role", ROLES)
def test_the_pages_name_a_visited_department_with_its_hospital_as_the_app_does(
    role, users, admin_user, client_for, api_for, xiehe, ruijin, shanghai
):
    """Many hospitals have a 心内科. A visit filed under 协和's showed as "张伟 · 心内科" in the list and on its page,
    next to one filed under 瑞金's: the KAM could not tell which hospital either was, while the app's
    institution_name said 北京协和医院 › 心内科. The pages now name the hospital too, for every role that reads them."""
    xiehe_cardiology = Institution.objects.get(parent=xiehe, name="心内科")
    ruijin_cardiology = customers.create_institution(
        admin_user, {"name": "心内科", "kind": "department", "parent": ruijin, "region": shanghai}
    )
    visit = services.record_interaction(
        users["kam"], {"institution": xiehe_cardiology, "person": xiehe.people.get(name="张伟"), "channel": "visit",
                       "subject": "科室会"},
    )  # fmt: skip
    services.record_interaction(
        users["kam"], {"institution": ruijin_cardiology, "channel": "visit", "subject": "科室拜访"}
    )
    page = client_for(role)

    listed = page.get("/interactions/")
    shown = page.get(f"/interactions/{visit.pk}/")

    assert listed.status_code == shown.status_code == 200
    rows = _between(listed.content.decode(), "<tbody>", "</tbody>")  # not the filter's institution picker
    facts = _between(shown.content.decode(), 'id="facts"', "</section>")  # not the edit form's
    assert "北京协和医院 › 心内科" in rows and "北京协和医院 › 心内科" in facts
    if role != Role.REP:  # the rep's territory is Beijing: 瑞金 is another rep's
        assert "上海交通大学医学院附属瑞金医院 › 心内科" in rows
    else:
        assert "瑞金" not in rows
    [app] = [i for i in api_for(role).get("/api/v1/interactions/").json()["results"] if i["id"] == visit.pk]
    assert app["institution_name"] == "北京协和医院 › 心内科"


def _between(text: str, start: str, end: str) -> str:
    return text.split(start, 1)[1].split(end, 1)[0]
