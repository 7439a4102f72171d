"""Filters and links that carry a record's id in the query string: an id that is no database integer ("²", which
str.isdigit() takes for a digit, or more digits than a bigint holds) is ignored like any other junk — the page
shows, instead of a server error (found by the UI QA crawl)."""

from __future__ import annotations

import pytest

from pharmacrm.sales import kpi

pytestmark = pytest.mark.django_db

ODD = ["²", "99999999999999999999", "１２"]


@pytest.mark.parametrize("odd", ODD)
def test_appraisal_page_ignores_an_odd_team_or_scheme(client_for, users, odd):
    kpi.default_scheme(users["manager"])
    manager = client_for("manager")
    for query in (f"team={odd}", f"scheme={odd}", f"scheme={odd}&team={odd}"):
        r = manager.get(f"/sales/appraisal/?{query}")
        assert r.status_code == 200, query
        assert r.context["filters"]["team"] == ""  # shown unfiltered, not filtered on a team that cannot exist


@pytest.mark.parametrize("odd", ODD)
def test_new_opportunity_form_ignores_an_odd_customer(client_for, odd):
    r = client_for("rep").get(f"/sales/pipeline/new/?customer={odd}")
    assert r.status_code == 200
    assert not r.context["form"].initial.get("institution")


@pytest.mark.parametrize("odd", ODD)
def test_new_opportunity_for_an_odd_customer_names_the_field(client_for, odd):
    r = client_for("rep").post("/sales/pipeline/new/", {"institution": odd, "title": "新品进院", "amount_fen": "1000"})
    assert r.status_code == 400
    assert "institution" in r.context["form"].errors
