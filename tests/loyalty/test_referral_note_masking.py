"""A referral's note (介绍人：王主任 139-1234-5678) was shown in clear in the API to the roles that read the loyalty
programme but see personal data masked (the analyst, the auditor): the contact details in it are masked for them, as
a customer's notes are; the roles that see personal data read it as typed, and what is stored is not changed."""

from __future__ import annotations

import pytest

from pharmacrm.loyalty import services
from pharmacrm.loyalty.models import Referral
from tests.api.conftest import api_for  # noqa: F401  (fixture)
from tests.loyalty.test_loyalty import pharmacy

pytestmark = pytest.mark.django_db

NOTE = "介绍人：王主任 139-1234-5678，邮箱li.na@example.com"


@pytest.fixture
def referral(users, beijing, team_north):
    shop = pharmacy(users["admin"], beijing, "同仁堂大药房朝阳店", owner=users["rep"], team=team_north)
    member = services.join(users["rep"], shop)
    near = pharmacy(users["admin"], beijing, "金象大药房朝阳店")
    return services.refer(users["rep"], member, near, NOTE)


@pytest.mark.parametrize("role", ["analyst", "auditor"])
def test_the_api_masks_a_referrals_note_for_roles_that_see_personal_data_masked(api_for, referral, role):  # noqa: F811
    api = api_for(role)
    assert [r["note"] for r in api.get("/api/v1/loyalty/referrals/").json()["results"]] == [
        "介绍人：王主任 139****5678，邮箱l***@example.com"]  # fmt: skip
    assert "139-1234-5678" not in str(api.get(f"/api/v1/loyalty/referrals/{referral.pk}/").json())


def test_roles_that_see_personal_data_read_it_as_typed(api_for, referral):  # noqa: F811
    for role in ("rep", "manager"):
        assert api_for(role).get(f"/api/v1/loyalty/referrals/{referral.pk}/").json()["note"] == NOTE, role
    assert Referral.objects.get(pk=referral.pk).note == NOTE
