"""Contact details typed into market intelligence (its title, text and source: 线人王主任 139-1234-5678), a presence
observation's note or the competitor catalogue's notes on a company or a product were shown in clear to the roles that read the market pages but see personal data masked (agent,
expert, support, after-sales, analyst, auditor): they are masked on the pages, in the API and the audit trail, as a
customer's notes are. The analyst, who keeps the intelligence and the catalogue, is shown the masks in the edit forms
and the API: saving them back keeps the real details. The roles that see personal data read them as typed."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from pharmacrm.market import services
from pharmacrm.market.models import Intelligence
from tests.api.conftest import api_for  # noqa: F401  (fixture)

pytestmark = pytest.mark.django_db

TITLE = "集采传闻，线人王主任 139-1234-5678"
CONTENT = "详情发邮件li.na@example.com\n身份证110101199003071234"
CLEAR = ("139-1234-5678", "li.na@example.com", "110101199003071234")


def _clear_in(text: str) -> bool:
    return any(v in text for v in CLEAR)


@pytest.fixture
def intel(users):
    return services.create_intelligence(users["manager"], {
        "kind": "tender", "title": TITLE, "content": CONTENT, "happened_on": timezone.localdate() - dt.timedelta(days=1),
        "source": "电话 13800138000", "importance": "normal", "province": ""})  # fmt: skip


@pytest.mark.parametrize("role", ["agent", "analyst", "auditor"])
def test_the_pages_and_the_api_mask_them_for_roles_that_see_personal_data_masked(client_for, api_for, intel, role):  # noqa: F811
    client = client_for(role)
    listing = client.get("/market/intelligence/").content.decode()
    assert "线人王主任 139****5678" in listing and not _clear_in(listing)
    page = client.get(f"/market/intelligence/{intel.pk}/").content.decode()
    assert "l***@example.com" in page and "110***********1234" in page and "电话 138****8000" in page
    assert not _clear_in(page) and "13800138000" not in page
    shown = api_for(role).get(f"/api/v1/market/intelligence/{intel.pk}/").json()
    assert (shown["title"], shown["source"]) == ("集采传闻，线人王主任 139****5678", "电话 138****8000")
    assert not _clear_in(shown["content"])


def test_roles_that_see_personal_data_read_them_as_typed(client_for, api_for, intel):  # noqa: F811
    page = client_for("kam").get(f"/market/intelligence/{intel.pk}/").content.decode()
    assert TITLE in page and "li.na@example.com" in page
    assert api_for("manager").get(f"/api/v1/market/intelligence/{intel.pk}/").json()["content"] == CONTENT


def test_the_analyst_shown_the_masks_keeps_the_real_details_when_saving_them_back(client_for, api_for, intel):  # noqa: F811
    analyst = client_for("analyst")
    form = analyst.get(f"/market/intelligence/{intel.pk}/edit/").context["form"]
    assert form.initial["title"] == "集采传闻，线人王主任 139****5678" and not _clear_in(form.initial["content"])
    posted = {k: v for k, v in form.initial.items() if v is not None}
    posted.update({"importance": "important", "version": intel.version})
    response = analyst.post(f"/market/intelligence/{intel.pk}/edit/", posted)
    assert response.status_code == 302, response.content.decode()[-2000:]
    stored = Intelligence.objects.get(pk=intel.pk)
    assert (stored.title, stored.content, stored.source, stored.importance) == (
        TITLE, CONTENT, "电话 13800138000", "important")
    api = api_for("analyst")
    shown = api.get(f"/api/v1/market/intelligence/{intel.pk}/").json()
    answer = api.patch(f"/api/v1/market/intelligence/{intel.pk}/", {
        "title": shown["title"], "content": shown["content"] + "\n已核实", "version": shown["version"]}, format="json")
    assert answer.status_code == 200, answer.content
    stored.refresh_from_db()
    assert (stored.title, stored.content) == (TITLE, CONTENT + "\n已核实")


def test_the_audit_trail_masks_them_for_the_auditor(client_for, api_for, users, intel):  # noqa: F811
    services.update_intelligence(users["manager"], intel, {"title": "集采落地，线人改为 13800138000"}, intel.version)
    query = {"object_type": "market.intelligence", "object_id": intel.pk}
    page = client_for("auditor").get("/accounts/audit/", query).content.decode()
    assert "139****5678" in page and "138****8000" in page
    assert not _clear_in(page) and "13800138000" not in page
    rows = api_for("auditor").get("/api/v1/audit/", query).json()["results"]
    assert rows and not any(_clear_in(str(r)) or "13800138000" in str(r) for r in rows)
    assert "13800138000" in client_for("admin").get("/accounts/audit/", query).content.decode()


def test_a_presence_notes_contact_details_are_masked_for_roles_that_see_personal_data_masked(
    client_for, api_for, users, xiehe  # noqa: F811
):
    from pharmacrm.market.models import Competitor, CompetitorProduct

    product = CompetitorProduct.objects.create(company=Competitor.objects.create(name="华海药业"), generic_name="缬沙坦")
    services.record_presence(users["manager"], xiehe, {
        "product": product.pk, "observed_on": timezone.localdate(), "source": "visit", "share": "30",
        "note": "药剂科王主任 139-1234-5678 说在用"})  # fmt: skip
    page = client_for("agent").get(f"/market/products/{product.pk}/").content.decode()
    assert "王主任 139****5678" in page and not _clear_in(page)
    assert [r["note"] for r in api_for("analyst").get("/api/v1/market/presence/").json()["results"]] == [
        "药剂科王主任 139****5678 说在用"]  # fmt: skip
    assert "139-1234-5678" in client_for("kam").get(f"/market/products/{product.pk}/").content.decode()


def test_a_search_does_not_confirm_the_hidden_digits_to_a_masked_reader(client_for, api_for, intel):  # noqa: F811
    """The analyst reads 线人王主任 139****5678: searching 1391234 found the item, telling them the hidden digits."""
    for q in ("1391234", "li.na@"):
        assert TITLE[:4] not in client_for("analyst").get("/market/intelligence/", {"q": q}).content.decode(), q
    assert api_for("analyst").get("/api/v1/market/intelligence/", {"q": "1391234"}).json()["results"] == []
    # the digits they read are found, as is a word, and a reader who sees personal data finds the number
    for q in ("5678", "集采传闻"):
        assert "集采传闻" in client_for("analyst").get("/market/intelligence/", {"q": q}).content.decode(), q
    assert len(api_for("analyst").get("/api/v1/market/intelligence/", {"q": "5678"}).json()["results"]) == 1
    assert TITLE in client_for("kam").get("/market/intelligence/", {"q": "139-1234"}).content.decode()
    assert len(api_for("manager").get("/api/v1/market/intelligence/", {"q": "139-1234"}).json()["results"]) == 1


# the competitor catalogue's notes on a company and on a product (医药代表张经理 139…, 样品申请 li.zhou@…)
COMPANY_NOTES = "华东区医药代表张经理 139-2222-3333"
COMPANY_SHOWN = "华东区医药代表张经理 139****3333"
PRODUCT_NOTES = "样品申请请邮件 li.zhou@example.com"
PRODUCT_SHOWN = "样品申请请邮件 l***@example.com"
CATALOGUE_CLEAR = ("139-2222-3333", "li.zhou@example.com")


@pytest.fixture
def catalogue(users):
    manager = users["manager"]
    company = services.save_competitor(manager, {"name": "恒瑞医药", "notes": "华东区"})
    company = services.save_competitor(manager, {"notes": COMPANY_NOTES}, company, company.version)
    product = services.save_product(manager, {"company": company.pk, "generic_name": "注射用头孢曲松钠",
                                              "vbp_status": "none", "notes": PRODUCT_NOTES})  # fmt: skip
    return company, product


@pytest.mark.parametrize("role", ["agent", "analyst", "auditor"])
def test_the_catalogues_notes_are_masked_for_roles_that_see_personal_data_masked(
    client_for, api_for, catalogue, role  # noqa: F811
):
    company, product = catalogue
    page = client_for(role).get(f"/market/products/{product.pk}/").content.decode()
    assert PRODUCT_SHOWN in page
    api = api_for(role)
    assert api.get(f"/api/v1/market/competitors/{company.pk}/").json()["notes"] == COMPANY_SHOWN
    assert api.get(f"/api/v1/market/competitor-products/{product.pk}/").json()["notes"] == PRODUCT_SHOWN
    texts = [page, str(api.get("/api/v1/market/competitors/").json()),
             str(api.get("/api/v1/market/competitor-products/").json())]  # fmt: skip
    for object_type, pk, shown in (("market.competitor", company.pk, COMPANY_SHOWN),
                                   ("market.competitorproduct", product.pk, PRODUCT_SHOWN)):  # fmt: skip
        query = {"object_type": object_type, "object_id": pk}
        audit_page = client_for("auditor").get("/accounts/audit/", query).content.decode()
        audited = str(api_for("auditor").get("/api/v1/audit/", query).json()["results"])
        assert shown in audit_page and shown in audited
        texts += [audit_page, audited]
    for text in texts:
        assert not any(clear in text for clear in CATALOGUE_CLEAR)


def test_the_catalogues_notes_are_read_as_typed_by_roles_that_see_personal_data(
    client_for, api_for, catalogue  # noqa: F811
):
    company, product = catalogue
    assert PRODUCT_NOTES in client_for("rep").get(f"/market/products/{product.pk}/").content.decode()
    assert api_for("kam").get(f"/api/v1/market/competitors/{company.pk}/").json()["notes"] == COMPANY_NOTES
    assert api_for("manager").get(f"/api/v1/market/competitor-products/{product.pk}/").json()["notes"] == PRODUCT_NOTES
    query = {"object_type": "market.competitor", "object_id": company.pk}
    assert COMPANY_NOTES in str(api_for("admin").get("/api/v1/audit/", query).json())


def test_the_analyst_keeping_the_catalogue_saves_the_masked_notes_back_without_losing_them(
    client_for, api_for, catalogue  # noqa: F811
):
    company, product = catalogue
    analyst = client_for("analyst")
    form = analyst.get(f"/market/competitors/{company.pk}/").content.decode()
    assert COMPANY_SHOWN in form and not any(clear in form for clear in CATALOGUE_CLEAR)
    response = analyst.post(f"/market/competitors/{company.pk}/", {
        "name": "恒瑞医药股份", "notes": COMPANY_SHOWN, "active": "on", "version": company.version})  # fmt: skip
    assert response.status_code == 302, response.content.decode()[-2000:]
    company.refresh_from_db()
    assert (company.name, company.notes) == ("恒瑞医药股份", COMPANY_NOTES)
    form = analyst.get(f"/market/products/{product.pk}/edit/").context["form"]
    assert form.initial["notes"] == PRODUCT_SHOWN
    posted = {k: v for k, v in form.initial.items() if v is not None}
    posted.update({"strength": "1.0g", "active": "on", "version": product.version})
    response = analyst.post(f"/market/products/{product.pk}/edit/", posted)
    assert response.status_code == 302, response.content.decode()[-2000:]
    product.refresh_from_db()
    assert (product.strength, product.notes) == ("1.0g", PRODUCT_NOTES)
    api = api_for("analyst")
    shown = api.get(f"/api/v1/market/competitor-products/{product.pk}/").json()
    answer = api.patch(f"/api/v1/market/competitor-products/{product.pk}/", {
        "notes": shown["notes"] + "，已寄样", "version": shown["version"]}, format="json")  # fmt: skip
    assert answer.status_code == 200, answer.content
    assert answer.json()["notes"] == PRODUCT_SHOWN + "，已寄样"  # answered as the analyst reads it
    product.refresh_from_db()
    assert product.notes == PRODUCT_NOTES + "，已寄样"
