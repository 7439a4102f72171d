"""The new-competitor and new-competitor-product forms sent twice (a double click on Save): the second sending
answered that the name was taken — the first had recorded it. Each now carries a one-time token: the second sending
records nothing more and shows what the first recorded."""

from __future__ import annotations

import re

import pytest

from pharmacrm.market.models import Competitor, CompetitorProduct

pytestmark = pytest.mark.django_db

SENT_AGAIN = "This form was already sent: the record was created then, and not a second time."


def _token(page: str, name: str = "form_token") -> str:
    return re.search(rf'name="{name}" value="([A-Za-z0-9_-]+)"', page).group(1)


def test_the_new_competitor_form_sent_twice_records_one(client_for, users):
    analyst = client_for("analyst")
    page = analyst.get("/market/competitors/").content.decode()
    assert "Form token" not in page and "form_token" in page  # hidden, not a field to fill in
    form = {"competitor-name": "华海药业", "competitor-notes": "", "competitor-active": "on",
            "competitor-form_token": _token(page, "competitor-form_token")}  # fmt: skip

    first = analyst.post("/market/competitors/", form)
    again = analyst.post("/market/competitors/", form, HTTP_ACCEPT_LANGUAGE="en", follow=True)

    competitor = Competitor.objects.get()
    assert first.status_code == 302
    assert again.redirect_chain[-1][0] == f"/market/competitors/{competitor.pk}/"
    assert SENT_AGAIN in again.content.decode() and "exists" not in again.content.decode()


def test_the_new_competitor_product_form_sent_twice_records_one(client_for, users):
    company = Competitor.objects.create(name="华海药业")
    manager = client_for("manager")
    form = {"company": company.pk, "generic_name": "氨氯地平", "brand_name": "华平", "vbp_status": "none",
            "active": "on", "form_token": _token(manager.get("/market/products/new/").content.decode())}  # fmt: skip

    first = manager.post("/market/products/new/", form)
    again = manager.post("/market/products/new/", form, HTTP_ACCEPT_LANGUAGE="en", follow=True)

    product = CompetitorProduct.objects.get()
    assert first.status_code == 302, first.content.decode()[-2000:]
    assert again.redirect_chain[-1][0] == f"/market/products/{product.pk}/"
    assert SENT_AGAIN in again.content.decode()


def test_an_intelligence_delete_without_a_version_is_stale_and_sent_twice_shows_the_list(client_for, users):
    """The page's delete button carries the version it showed: a form without one deleted whatever the record held
    by then; it is refused as stale now. Sent twice, the second answered "not found"; it now shows the list."""
    from pharmacrm.market import services
    from pharmacrm.market.models import Intelligence

    item = services.create_intelligence(users["analyst"], {"kind": "policy", "title": "医保目录调整",
                                                           "happened_on": "2026-11-02", "importance": "normal"})  # fmt: skip
    analyst = client_for("analyst")
    url = f"/market/intelligence/{item.pk}/delete/"

    refused = analyst.post(url, {}, HTTP_ACCEPT_LANGUAGE="en", follow=True)

    assert refused.redirect_chain[-1][0] == f"/market/intelligence/{item.pk}/"
    assert "Someone else changed this record" in refused.content.decode()
    assert Intelligence.objects.filter(pk=item.pk).exists()
    assert analyst.post(url, {"version": item.version}).status_code == 302
    again = analyst.post(url, {"version": item.version}, HTTP_ACCEPT_LANGUAGE="en", follow=True)
    assert again.redirect_chain[-1][0] == "/market/intelligence/"
    assert "This intelligence was deleted already." in again.content.decode()
