"""A member a rep serves may refer a customer outside the rep's territory (a manager recorded it): the referral is
the rep's to see, the referred institution is not. Its name and id were shown on the member's page and in the API;
the rep now reads "an institution outside your territory" there, and the roles that see it read its name as before."""

from __future__ import annotations

import pytest

from pharmacrm.loyalty import services
from tests.api.conftest import api_for  # noqa: F401  (fixture)
from tests.loyalty.test_loyalty import pharmacy

pytestmark = pytest.mark.django_db


@pytest.fixture
def referrals(users, beijing, shanghai, team_north):
    shop = pharmacy(users["admin"], beijing, "同仁堂大药房朝阳店", owner=users["rep"], team=team_north)
    member = services.join(users["rep"], shop)
    far = pharmacy(users["admin"], shanghai, "上海第一医药商店")
    near = pharmacy(users["admin"], beijing, "金象大药房朝阳店")
    services.refer(users["manager"], member, far)
    services.refer(users["rep"], member, near)
    return member, far, near


def test_the_member_page_does_not_name_a_referred_customer_outside_the_reps_territory(client_for, referrals):
    member, far, near = referrals
    page = client_for("rep").get(f"/loyalty/members/{member.pk}/").content.decode()
    assert "上海第一医药商店" not in page and f"/customers/institutions/{far.pk}/" not in page
    assert "金象大药房朝阳店" in page
    assert page.count("out-of-scope") == 1
    for role in ("manager", "analyst", "auditor"):
        page = client_for(role).get(f"/loyalty/members/{member.pk}/").content.decode()
        assert "上海第一医药商店" in page and "out-of-scope" not in page, role


def test_the_api_does_not_name_nor_identify_it_either(api_for, referrals):  # noqa: F811
    member, far, near = referrals
    rows = {r["referred_name"]: r for r in api_for("rep").get("/api/v1/loyalty/referrals/").json()["results"]}
    assert "上海第一医药商店" not in rows
    hidden = rows["an institution outside your territory"]
    assert hidden["referred"] is None and hidden["referred_in_scope"] is False
    assert rows["金象大药房朝阳店"]["referred"] == near.pk and rows["金象大药房朝阳店"]["referred_in_scope"] is True
    one = api_for("rep").get(f"/api/v1/loyalty/referrals/{hidden['id']}/").json()
    assert one["referred"] is None and "上海" not in str(one)
    managers = api_for("manager").get("/api/v1/loyalty/referrals/").json()["results"]
    assert {r["referred_name"] for r in managers} == {"上海第一医药商店", "金象大药房朝阳店"}
    assert all(r["referred_in_scope"] for r in managers)


def test_a_second_claim_does_not_name_a_first_referrer_outside_the_reps_territory(users, beijing, shanghai, team_north):
    from django.core.exceptions import ValidationError
    from django.utils import translation

    shop = pharmacy(users["admin"], beijing, "同仁堂大药房朝阳店", owner=users["rep"], team=team_north)
    mine = services.join(users["rep"], shop)
    far_member = services.join(users["manager"], pharmacy(users["admin"], shanghai, "上海第一医药商店"))
    new = pharmacy(users["admin"], beijing, "新开连锁药房", owner=users["rep"], team=team_north)
    services.refer(users["manager"], far_member, new)
    with pytest.raises(ValidationError) as e, translation.override("en"):
        services.refer(users["rep"], mine, new)
    message = e.value.message_dict["referred"][0]
    assert "上海第一医药商店" not in message and far_member.number not in message
    assert "新开连锁药房 was referred already, by an institution outside your territory, on " in message
    with pytest.raises(ValidationError) as e, translation.override("en"):  # who sees the first referrer reads its name
        services.refer(users["manager"], mine, new)
    assert f"by {far_member.number} 上海第一医药商店" in e.value.message_dict["referred"][0]
