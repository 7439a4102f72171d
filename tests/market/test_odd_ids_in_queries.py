"""Market pages and forms given a record's id that is no database integer ("²", which str.isdigit() takes for a
digit, or more digits than a bigint holds): the form shows, or names the field, instead of a server error (found by
the UI QA crawl)."""

from __future__ import annotations

import pytest
from django.utils import timezone

pytestmark = pytest.mark.django_db

ODD = ["²", "99999999999999999999"]


@pytest.mark.parametrize("odd", ODD)
def test_new_intelligence_form_ignores_an_odd_customer_link(client_for, odd):
    r = client_for("analyst").get(f"/market/intelligence/new/?institution={odd}")
    assert r.status_code == 200
    assert r.context["form"].initial["customers"] == []


@pytest.mark.parametrize("odd", ODD)
def test_intelligence_with_an_odd_customer_names_the_field(client_for, odd):
    r = client_for("analyst").post("/market/intelligence/new/", {
        "kind": "news", "importance": "normal", "title": "集采", "content": "第十批", "customers": [odd],
        "happened_on": timezone.localdate().isoformat(),
    })  # fmt: skip
    assert r.status_code in (200, 400)
    assert "customers" in r.context["form"].errors


@pytest.mark.parametrize("odd", ODD)
def test_competitor_product_with_an_odd_company_names_the_field(client_for, odd):
    r = client_for("analyst").post("/market/products/new/", {"company": odd, "name": "络活喜"})
    assert r.status_code in (200, 400)
    assert "company" in r.context["form"].errors


@pytest.mark.parametrize("version", ["abc", "1e309", "²"])
def test_a_garbled_version_is_a_stale_form_not_a_server_error(client_for, users, version):
    """The hidden version of an edit form that is not a number counts as an old one: the page says someone else
    changed the record (409) and nothing is saved."""
    from pharmacrm.market import services
    from pharmacrm.market.models import Competitor

    company = services.save_competitor(users["analyst"], {"name": "辉瑞（中国）"})
    r = client_for("analyst").post(f"/market/competitors/{company.pk}/", {"name": "辉瑞", "version": version})
    assert r.status_code == 409
    assert Competitor.objects.get(pk=company.pk).name == "辉瑞（中国）"
