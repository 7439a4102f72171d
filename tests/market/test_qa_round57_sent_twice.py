"""Session 57 (QA, duplicate submissions): a market-intelligence form or a competitor observation sent twice (a
double click on Save, Back and Save) recorded two of them; each create form now carries a one-time token, and the
second sending shows the record the first made."""

from __future__ import annotations

import re

import pytest

from pharmacrm.market import services
from pharmacrm.market.models import Intelligence, Presence

pytestmark = pytest.mark.django_db


def _token(page: str) -> str:
    return re.search(r'name="form_token" value="([A-Za-z0-9_-]+)"', page).group(1)


def test_the_intelligence_form_sent_twice_records_one(client_for):
    analyst = client_for("analyst")
    page = analyst.get("/market/intelligence/new/").content.decode()
    form = {"kind": "tender", "title": "第十批国家集采结果公布", "happened_on": "2026-11-02", "importance": "normal",
            "form_token": _token(page)}  # fmt: skip

    first = analyst.post("/market/intelligence/new/", form)
    again = analyst.post("/market/intelligence/new/", form, HTTP_ACCEPT_LANGUAGE="en", follow=True)  # double click

    item = Intelligence.objects.get()  # one
    assert first.status_code == 302 and again.redirect_chain[-1][0] == f"/market/intelligence/{item.pk}/"
    assert "This form was already sent: the record was created then" in again.content.decode()
    # a new form (a new token) records a new one, and the edit page carries the version, not a token
    page = analyst.get("/market/intelligence/new/").content.decode()
    assert analyst.post("/market/intelligence/new/", {**form, "form_token": _token(page)}).status_code == 302
    assert Intelligence.objects.count() == 2
    assert 'name="form_token"' not in analyst.get(f"/market/intelligence/{item.pk}/edit/").content.decode()


def test_a_refused_intelligence_form_corrected_and_sent_again_is_recorded(client_for):
    analyst = client_for("analyst")
    token = _token(analyst.get("/market/intelligence/new/").content.decode())
    form = {"kind": "tender", "happened_on": "2026-11-02", "importance": "normal", "form_token": token}

    refused = analyst.post("/market/intelligence/new/", form)  # no title
    assert refused.status_code == 400 and f'value="{token}"' in refused.content.decode()  # the token is kept
    assert analyst.post("/market/intelligence/new/", {**form, "title": "集采结果"}).status_code == 302
    assert Intelligence.objects.get().title == "集采结果"


def test_an_observation_sent_twice_is_recorded_once(users, xiehe, client_for):
    company = services.save_competitor(users["admin"], {"name": "华海药业"})
    product = services.save_product(users["admin"], {"company": company.pk, "generic_name": "苯磺酸氨氯地平片",
                                                     "vbp_status": "none"})  # fmt: skip
    kam = client_for("kam")
    url = f"/market/customer/{xiehe.pk}/presence/"
    form = {"product": product.pk, "monthly_volume": "100", "observed_on": "2026-11-02", "source": "visit",
            "form_token": _token(kam.get(url).content.decode())}  # fmt: skip

    assert kam.post(url, form).status_code == 302
    again = kam.post(url, form, HTTP_ACCEPT_LANGUAGE="en", follow=True)

    assert Presence.objects.filter(institution=xiehe).count() == 1
    assert again.redirect_chain[-1][0] == url and "This form was already sent" in again.content.decode()
