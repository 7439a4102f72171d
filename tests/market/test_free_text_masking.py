"""Contact details typed into market intelligence (its title, text and source: 线人王主任 139-1234-5678) or a presence
observation's note were shown in clear to the roles that read the market pages but see personal data masked (agent,
expert, support, after-sales, analyst, auditor): they are masked on the pages, in the API and the audit trail, as a
customer's notes are. The analyst, who keeps the intelligence, is shown the masks in the edit form and the API: saving
them back keeps the real details. The roles that see personal data read them as typed."""

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
