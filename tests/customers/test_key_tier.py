"""The tier "key account" (重点客户) is granted and withdrawn by the key-account programme only: the customer
form does not offer it and refuses it, the API answers 400 on `tier`, a listed customer cannot be moved off it,
and the demo gives it only to the customers the programme listed."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from pharmacrm.core.models import AuditEntry
from pharmacrm.customers import services as customers
from pharmacrm.customers.choices import Tier
from pharmacrm.customers.forms import institution_initial
from pharmacrm.customers.models import Institution, Person
from pharmacrm.servicedesk import services as desk
from tests.api.conftest import token_for
from tests.keyaccounts.programme_fixtures import *  # noqa: F403
from tests.keyaccounts.programme_fixtures import sign_code

pytestmark = pytest.mark.django_db

MESSAGE = "The key-account tier is granted and withdrawn through the key-account programme"


def api(user) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token_for(user)}", HTTP_ACCEPT_LANGUAGE="en")
    return client


def edit_data(inst: Institution, **changes) -> dict:
    data = {k: ("" if v is None else v) for k, v in institution_initial(inst).items()}
    data.update({"province": "110000", "city": "110100", "district": "110105"})
    data.update(changes)
    return data


def tier_options(page: str) -> str:
    return page.split('name="tier"')[1].split("</select>")[0]


# --- the form --------------------------------------------------------------------------------------------------


def test_the_form_does_not_offer_key_and_refuses_it_under_the_tier_field(client_for, xiehe):
    c = client_for("kam")
    url = f"/customers/institutions/{xiehe.pk}/edit/"
    page = c.get(url, HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert 'value="key"' not in tier_options(page) and 'value="vip"' in tier_options(page)
    before = AuditEntry.objects.filter(object_type="customers.institution", object_id=str(xiehe.pk)).count()
    r = c.post(url, edit_data(xiehe, tier="key"), HTTP_ACCEPT_LANGUAGE="en")
    assert r.status_code == 200
    field = r.content.decode().split('id="field-tier"')[1].split('id="field-')[0]
    assert MESSAGE in field
    xiehe.refresh_from_db()
    assert xiehe.tier == Tier.NEW
    assert AuditEntry.objects.filter(object_type="customers.institution", object_id=str(xiehe.pk)).count() == before
    # the create form neither
    new = c.get("/customers/institutions/new/").content.decode()
    assert 'value="key"' not in tier_options(new)


def test_a_listed_customer_keeps_key_in_the_form(client_for, xiehe, listed):
    listed(xiehe)
    xiehe.refresh_from_db()
    c = client_for("kam")
    url = f"/customers/institutions/{xiehe.pk}/edit/"
    options = tier_options(c.get(url).content.decode())
    assert 'value="key"' in options and 'value="regular"' not in options
    r = c.post(url, edit_data(xiehe, tier="regular"), HTTP_ACCEPT_LANGUAGE="en")
    assert r.status_code == 200 and MESSAGE in r.content.decode()
    assert Institution.objects.get(pk=xiehe.pk).tier == Tier.KEY
    # other changes go through while the tier stays
    r = c.post(url, edit_data(xiehe, notes="院方新设采购办"))
    assert r.status_code == 302
    xiehe.refresh_from_db()
    assert xiehe.tier == Tier.KEY and xiehe.notes == "院方新设采购办"


def test_a_key_tier_without_a_file_can_be_moved_off_key(client_for, admin_user, xiehe):
    """Data from before the rule (a customer marked key by hand): the form offers key so that it shows, and
    lets the customer go back to an ordinary tier."""
    customers.update_institution(admin_user, xiehe, {"tier": Tier.KEY})
    xiehe.refresh_from_db()
    c = client_for("kam")
    url = f"/customers/institutions/{xiehe.pk}/edit/"
    assert 'value="key"' in tier_options(c.get(url).content.decode())
    assert c.post(url, edit_data(xiehe, tier="vip")).status_code == 302
    assert Institution.objects.get(pk=xiehe.pk).tier == Tier.VIP


# --- the API ---------------------------------------------------------------------------------------------------


def test_the_api_refuses_to_set_key_and_the_ticket_is_not_boosted(users, xiehe):
    r = api(users["kam"]).patch(f"/api/v1/institutions/{xiehe.pk}/", {"tier": "key", "version": xiehe.version},
                                format="json")  # fmt: skip
    assert r.status_code == 400
    assert list(r.json()) == ["tier"] and MESSAGE in r.json()["tier"][0]
    xiehe.refresh_from_db()
    assert xiehe.tier == Tier.NEW and xiehe.version == 1
    ticket = desk.create_ticket(users["agent"], {"subject": "到货咨询", "channel": "phone", "category": "drug_info",
                                                 "institution": xiehe})  # fmt: skip
    assert not ticket.boosted
    created = api(users["kam"]).post("/api/v1/institutions/", {"name": "北京朝阳医院", "kind": "hospital",
                                                               "tier": "key"}, format="json")  # fmt: skip
    assert created.status_code == 400 and list(created.json()) == ["tier"]
    assert not Institution.objects.filter(name="北京朝阳医院").exists()
    person = Person.objects.get(institution=xiehe)
    r = api(users["kam"]).patch(f"/api/v1/people/{person.pk}/", {"tier": "key", "version": person.version},
                                format="json")  # fmt: skip
    assert r.status_code == 400 and list(r.json()) == ["tier"]
    assert Person.objects.get(pk=person.pk).tier != Tier.KEY


def test_the_api_refuses_to_move_a_listed_customer_off_key(users, xiehe, listed):
    listed(xiehe)
    xiehe.refresh_from_db()
    url = f"/api/v1/institutions/{xiehe.pk}/"
    r = api(users["kam"]).patch(url, {"tier": "regular", "version": xiehe.version}, format="json")
    assert r.status_code == 400 and MESSAGE in r.json()["tier"][0]
    assert Institution.objects.get(pk=xiehe.pk).tier == Tier.KEY
    # sending the tier it has is no change
    r = api(users["kam"]).patch(url, {"tier": "key", "notes": "备注", "version": xiehe.version}, format="json")
    assert r.status_code == 200 and r.json()["tier"] == "key"


def test_the_programme_still_sets_and_clears_key(users, xiehe, listed, make_proposal, manager2):
    from pharmacrm.keyaccounts import services as ka

    listed(xiehe)
    assert Institution.objects.get(pk=xiehe.pk).tier == Tier.KEY
    proposal = make_proposal(xiehe, kind="delist")
    ka.decide(manager2, proposal, approve=True, comment="合作结束", otp_code=sign_code(manager2))
    assert Institution.objects.get(pk=xiehe.pk).tier == Tier.NEW  # its tier from before the listing


# --- the demo --------------------------------------------------------------------------------------------------


def test_the_demo_customers_never_draw_the_key_tier(users):
    from pharmacrm.core import demo

    b = demo._Builder(0.05, demo.SEED)
    teams = demo._teams(users)
    tiers = {demo._account_fields(b, teams, users, "110105", key_weight=3.0)["tier"] for _i in range(1500)}
    assert Tier.KEY not in tiers and Tier.VIP in tiers


