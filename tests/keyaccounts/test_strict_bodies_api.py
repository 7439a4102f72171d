"""The key-account endpoints' request bodies: ids and numbers written in other than ASCII digits ("١٢", "１２") were
read as 12 and acted on; a misspelt field was dropped without a word; a plan item read with GET may be sent back with
one field changed."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from pharmacrm.keyaccounts import services
from pharmacrm.keyaccounts.models import PlanItem, TeamMember
from tests.api.conftest import token_for

from .programme_fixtures import *  # noqa: F403
from .programme_fixtures import AREAS

pytestmark = pytest.mark.django_db
BASE = "/api/v1/keyaccounts/"


def _in(zero: str, number: int) -> str:
    """The number written with the digits whose zero is `zero`."""
    return "".join(chr(ord(zero) + int(d)) for d in str(number))


@pytest.fixture
def api(users):
    def make(role: str, lang: str = "en") -> APIClient:
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Token {token_for(users[role])}", HTTP_ACCEPT_LANGUAGE=lang)
        return client

    return make


@pytest.mark.parametrize("zero", ["٠", "０"], ids=["arabic-indic", "full-width"])
def test_a_team_member_named_by_ids_in_foreign_digits_is_refused_by_field(api, users, make_user, xiehe, staffed,
                                                                          zero):  # fmt: skip
    from pharmacrm.core.roles import Role

    account = staffed(xiehe)
    expert2 = make_user("expert2", Role.EXPERT)
    body = {"account": _in(zero, account.pk), "user": _in(zero, expert2.pk), "role": "expert"}
    r = api("kam").post(f"{BASE}members/", body, format="json")
    assert r.status_code == 400, r.content
    assert r.json() == {"account": ["A valid integer is required."], "user": ["A valid integer is required."]}
    r = api("kam", lang="zh-hans").post(f"{BASE}members/", body, format="json")
    assert r.json()["account"] == ["请输入有效的整数。"]
    assert not TeamMember.objects.filter(user=expert2).exists()


def test_progress_in_arabic_indic_digits_is_refused_and_the_item_unchanged(api, users, xiehe, with_plan):
    """Progress is a whole number a person types, read as the page reads it: full-width digits are 50 (the form
    took them, the API refused them), Arabic-Indic ones are no number."""
    _account, plan = with_plan(xiehe)
    item = plan.items.first()
    url = f"{BASE}plan-items/{item.pk}/progress/"
    r = api("kam").post(url, {"status": "in_progress", "progress": "٥٠", "version": item.version}, format="json")
    assert r.status_code == 400 and r.json() == {"progress": ["Enter a whole number, such as 12 or 1,200."]}
    item.refresh_from_db()
    assert item.progress == 0
    r = api("kam").post(url, {"status": "in_progress", "progress": "５０", "version": item.version}, format="json")
    assert r.status_code == 200, r.content
    item.refresh_from_db()
    assert item.progress == 50


def test_a_plan_item_read_with_get_is_sent_back_with_one_field_changed(api, users, xiehe, staffed):
    plan = services.start_plan(users["kam"], staffed(xiehe))
    kam = api("kam")
    deadline = (timezone.localdate() + dt.timedelta(days=10)).isoformat()
    created = kam.post(f"{BASE}plan-items/", {"plan": plan.pk, "area": AREAS[0], "title": "供货", "standard": "标准",
                                              "owner": users["kam"].pk, "deadline": deadline}, format="json")  # fmt: skip
    assert created.status_code == 201, created.content
    url = f"{BASE}plan-items/{created.json()['id']}/"
    r = kam.patch(url, {**kam.get(url).json(), "title": "供货（修订）"}, format="json")
    assert r.status_code == 200, r.content
    assert r.json()["title"] == "供货（修订）"
    r = kam.patch(url, {"titel": "错字", "version": r.json()["version"]}, format="json")
    assert r.status_code == 400 and r.json() == {"titel": ["Unknown field."]}
    assert PlanItem.objects.get(pk=created.json()["id"]).title == "供货（修订）"


def test_a_scoring_model_weight_or_reference_that_is_no_number_is_refused(api, users):
    """Full-width digits are read as typed (tests/keyaccounts/test_typed_model_numbers.py); words are not numbers."""
    from pharmacrm.keyaccounts.models import ScoringModel

    url = "/api/v1/scoring-models/evaluation/"
    analyst = api("analyst")
    current = analyst.get(url).json()
    r = analyst.put(url, {**current, "weights": {**current["weights"], "amount": "五十"}}, format="json")
    assert r.status_code == 400 and list(r.json()) == ["weights"], r.content
    r = analyst.put(url, {"params": {"amount_reference": "五十万"}, "version": current["version"]}, format="json")
    assert r.status_code == 400 and list(r.json()) == ["params"], r.content
    assert ScoringModel.objects.filter(kind="evaluation").count() == 1
    # what GET answers is taken back with one value changed
    r = analyst.put(url, {**current, "weights": {**current["weights"], "amount": 50, "credit": 10}}, format="json")
    assert r.status_code == 200, r.content
