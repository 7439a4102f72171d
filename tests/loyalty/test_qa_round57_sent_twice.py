"""Session 57 (QA, duplicate submissions): on a member's page, "Redeem" or "Adjust points" sent twice (a double
click, Back and send) reserved the points twice, or added or deducted them twice; a new reward sent twice was refused
as a name taken. Each of these forms now carries a one-time token: the second sending changes nothing and says so."""

from __future__ import annotations

import re

import pytest

from pharmacrm.loyalty.models import PointsEntry, Redemption, Reward
from tests.loyalty.test_pages import world  # noqa: F401

pytestmark = pytest.mark.django_db


def _token(page: str, name: str) -> str:
    return re.search(rf'name="{name}" value="([A-Za-z0-9_-]+)"', page).group(1)


def test_redeem_sent_twice_reserves_the_points_once(world, client_for):  # noqa: F811
    rep, member = client_for("rep"), world["ours"]
    url = f"/loyalty/members/{member.pk}/"
    form = {"action": "redeem", "redeem-reward": str(world["reward"].pk), "redeem-quantity": "1",
            "redeem-form_token": _token(rep.get(url).content.decode(), "redeem-form_token")}  # fmt: skip
    before = Redemption.objects.filter(member=member).count()

    assert rep.post(url, form).status_code == 302
    again = rep.post(url, form, HTTP_ACCEPT_LANGUAGE="en", follow=True)  # a double click

    assert Redemption.objects.filter(member=member).count() == before + 1
    body = again.content.decode()
    assert "This form was already sent" in body and 'id="balance">100<' in body  # 500 − 200 − 200, not − 200 more


def test_adjust_sent_twice_adds_the_points_once_and_a_new_form_adds_them_again(world, client_for):  # noqa: F811
    manager, member = client_for("manager"), world["ours"]
    url = f"/loyalty/members/{member.pk}/"
    form = {"action": "adjust", "adjust-points": "50", "adjust-reason": "活动补录",
            "adjust-form_token": _token(manager.get(url).content.decode(), "adjust-form_token")}  # fmt: skip

    assert manager.post(url, form).status_code == 302
    assert manager.post(url, form).status_code == 302
    assert PointsEntry.objects.filter(member=member, points=50).count() == 1
    # refused input keeps its token (the corrected form is then acted on); a fresh form is a new adjustment
    page = manager.get(url).content.decode()
    fresh = {**form, "adjust-form_token": _token(page, "adjust-form_token")}
    refused = manager.post(url, {**fresh, "adjust-points": "x"})
    assert refused.status_code == 400 and fresh["adjust-form_token"] in refused.content.decode()
    assert manager.post(url, fresh).status_code == 302
    assert PointsEntry.objects.filter(member=member, points=50).count() == 2


def test_a_new_reward_sent_twice_is_added_once_without_an_error(world, client_for):  # noqa: F811
    manager = client_for("manager")
    page = manager.get("/loyalty/rewards/").content.decode()
    form = {"reward-name": "血压计", "reward-kind": "trial", "reward-points_cost": "300", "reward-value_cny": "199.00",
            "reward-active": "on", "reward-form_token": _token(page, "reward-form_token")}  # fmt: skip

    assert manager.post("/loyalty/rewards/", form).status_code == 302
    again = manager.post("/loyalty/rewards/", form, HTTP_ACCEPT_LANGUAGE="en", follow=True)

    assert again.status_code == 200 and "This form was already sent" in again.content.decode()
    assert Reward.objects.filter(name="血压计").count() == 1
    reward = Reward.objects.get(name="血压计")
    assert 'name="reward-form_token"' not in manager.get(f"/loyalty/rewards/{reward.pk}/").content.decode()
