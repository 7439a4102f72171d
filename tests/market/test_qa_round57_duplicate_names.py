"""Session 57 (API QA): a competitor, or a competitor's product, recorded a second time was refused without saying
which one was meant ("A competitor of this name is recorded already."); the refusal now names the one on file."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from pharmacrm.market.models import Competitor, CompetitorProduct

pytestmark = pytest.mark.django_db


def _admin(users) -> APIClient:
    client = APIClient(HTTP_ACCEPT_LANGUAGE="en")
    client.force_authenticate(users["admin"])
    return client


def test_a_competitor_recorded_already_in_another_letter_case_is_named_as_recorded(users):
    admin = _admin(users)
    assert admin.post("/api/v1/market/competitors/", {"name": "Pfizer"}, format="json").status_code == 201

    again = admin.post("/api/v1/market/competitors/", {"name": "PFIZER"}, format="json")

    assert again.status_code == 400
    assert again.json()["name"] == [
        "A competitor named “Pfizer” is recorded already: change that one, or choose another name."
    ]
    assert Competitor.objects.count() == 1


def test_a_competitors_product_recorded_already_is_named(users):
    admin = _admin(users)
    company = admin.post("/api/v1/market/competitors/", {"name": "华海药业"}, format="json").json()
    body = {"company": company["id"], "generic_name": "氨氯地平片", "brand_name": "络活喜", "strength": "5mg",
            "vbp_status": "none"}  # fmt: skip
    assert admin.post("/api/v1/market/competitor-products/", body, format="json").status_code == 201

    again = admin.post("/api/v1/market/competitor-products/", body, format="json")

    assert again.status_code == 400
    assert again.json()["generic_name"] == [
        "The product 氨氯地平片 络活喜 5mg of 华海药业 is recorded already: change that one."
    ]
    assert CompetitorProduct.objects.count() == 1
