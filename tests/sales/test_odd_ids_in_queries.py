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


@pytest.mark.parametrize("odd", ["abc", "²", "99999999999999999999"])
def test_computing_or_finalising_an_odd_scheme_is_no_such_scheme(client_for, users, odd):
    kpi.default_scheme(users["manager"])
    manager = client_for("manager")
    for action in ("compute", "finalise"):
        assert manager.post(f"/sales/appraisal/{action}/", {"scheme": odd, "period": "2026-Q3"}).status_code == 404


@pytest.mark.parametrize("value", ["1e309", "9" * 40])
def test_a_scheme_of_absurd_thresholds_names_the_field(client_for, users, value):
    scheme = kpi.default_scheme(users["manager"])
    r = client_for("manager").post(f"/sales/appraisal/schemes/{scheme.pk}/",
                                   {"name": "季度考核", "excellent": value, "version": "abc"})  # fmt: skip
    assert r.status_code in (400, 409)
    assert scheme.__class__.objects.get(pk=scheme.pk).excellent == 90
