"""Phone numbers from Hong Kong, Macau, Taiwan and abroad (+852 9123 4567, +853 2837 3456, +886 912 345 678,
+1 415 555 0100, +44 20 7946 0958): one rule in normalise, taken by the person and institution forms, the API and the
import, stored in E.164 (+85291234567) and shown in the international format, masked with the country code and the
last digits, found by the search and by the duplicate check. A number without a country code is a mainland one, as
always: an 8-digit Hong Kong number without +852 is refused saying to add it. (The service desk's side:
tests/servicedesk/test_caller_phones_from_elsewhere.py.)"""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError
from django.db import connection
from django.urls import reverse
from django.utils import translation

from pharmacrm.core import crypto
from pharmacrm.customers import importer, normalise, services
from pharmacrm.customers.models import Institution, Person
from tests.api.conftest import api_for  # noqa: F401  (fixture)
from tests.customers.test_qa_round35_entry_paths import _csv, _errors

pytestmark = pytest.mark.django_db
EN = {"HTTP_ACCEPT_LANGUAGE": "en"}
MOBILE_MESSAGE = (
    "Enter a valid mainland mobile (11 digits starting with 13–19), or a mobile from elsewhere with its country code, "
    "e.g. +852 9123 4567."
)
LANDLINE_MESSAGE = (
    "Enter a valid landline with its area code, e.g. 010-12345678 or 0755-1234567, or a landline from elsewhere with "
    "its country code, e.g. +852 2812 3456."
)


# --- the rule ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "typed, stored, shown, masked",
    [
        ("+852 9123 4567", "+85291234567", "+852 9123 4567", "+852 ****4567"),
        ("00852-9123-4567", "+85291234567", "+852 9123 4567", "+852 ****4567"),
        ("(852) 9123 4567", "+85291234567", "+852 9123 4567", "+852 ****4567"),
        ("＋８５２ ９１２３ ４５６７", "+85291234567", "+852 9123 4567", "+852 ****4567"),
        ("+853 6612 3456", "+85366123456", "+853 6612 3456", "+853 ****3456"),
        ("+886 912 345 678", "+886912345678", "+886 912 345 678", "+886 ****5678"),
        ("+1 415 555 0100", "+14155550100", "+1 415-555-0100", "+1 ****0100"),
    ],
)
def test_a_mobile_from_elsewhere_is_kept_in_e164_shown_international_and_masked(typed, stored, shown, masked):
    assert normalise.validate_mobile(typed) == stored
    assert normalise.phone(typed) == stored  # what the blind index is built on
    assert normalise.format_phone(stored) == shown
    assert normalise.mask_phone(stored) == masked
    assert normalise.is_masked("mobile", masked)  # a masked value read back never replaces the real one


@pytest.mark.parametrize(
    "typed, stored",
    [("+852 2812 3456", "+85228123456"), ("+853 2837 3456", "+85328373456"), ("+886 2 2345 6789", "+886223456789"),
     ("+44 20 7946 0958", "+442079460958"), ("+44 (0)20 7946 0958", "+442079460958"),
     ("+44 20 7946 0958 转 123", "+442079460958转123")],
)  # fmt: skip
def test_a_landline_from_elsewhere_is_kept_in_e164_with_its_extension(typed, stored):
    assert normalise.validate_landline_with_extension(typed) == stored
    assert normalise.validate_any_phone(typed) == stored.partition("转")[0]


def test_a_mobile_is_no_landline_and_a_landline_no_mobile_from_elsewhere_too():
    with translation.override("en"):
        with pytest.raises(ValidationError) as exc:
            normalise.validate_mobile("+852 2812 3456")  # a Hong Kong fixed line
        assert exc.value.messages == [MOBILE_MESSAGE]  # read in English too
    with translation.override("en"):
        with pytest.raises(ValidationError) as exc:
            normalise.validate_landline("+852 9123 4567")
        assert exc.value.messages == [LANDLINE_MESSAGE]  # read in English too
    with pytest.raises(ValidationError) as exc:
        normalise.validate_mobile("+852 9123 4567 转 12")  # a mobile has no extension, wherever it is
    assert exc.value.code == "mobile_extension"
    with pytest.raises(ValidationError):
        normalise.validate_any_phone("+852 1234 5678")  # no number of Hong Kong


@pytest.mark.parametrize("typed", ["9123 4567", "91234567", "852 9123 4567"])
def test_a_hong_kong_number_without_its_country_code_is_refused_saying_to_add_it(typed):
    with translation.override("en"):
        with pytest.raises(ValidationError) as exc:
            normalise.validate_mobile(typed)
        assert exc.value.messages == [MOBILE_MESSAGE]  # read in English too


@pytest.mark.parametrize(
    "typed, stored",
    [("13800138000", "13800138000"), ("+86 138-0013-8000", "13800138000"), ("0086 138 0013 8000", "13800138000"),
     ("8613800138000", "13800138000"), ("(010) 6915 6115-8021", "01069156115"), ("+86 10 1234 5678", "01012345678"),
     ("+86 400 123 4567", "4001234567"), ("(1) 415 555 0100", "14155550100")],
)  # fmt: skip
def test_mainland_numbers_keep_their_digits_and_blind_index(typed, stored):
    """Encrypted data and blind indexes stored before keep matching: a mainland number's form is unchanged (and a
    bracketed code whose digits make a mainland number is read as the mainland number)."""
    assert normalise.phone(typed) == stored


def test_a_number_from_elsewhere_in_a_free_text_is_masked_and_restored():
    text = "请回电 +852 9123 4567 或 13800138000，2024年"
    masked = normalise.mask_contacts(text)
    assert masked == "请回电 +852 ****4567 或 138****8000，2024年"
    assert normalise.restore_contacts(masked, text) == text
    # one that is no valid number (a digit mistyped) and one cut short at the end of a title are masked too
    assert normalise.mask_contacts("电话+85212345678谢谢") == "电话+852 ****5678谢谢"
    assert normalise.mask_contacts_cut("请尽快回电 +852 9123 45", 18) == "请尽快回电 +852 ****45"
    assert normalise.mask_contacts("批号 2024+1 件，订单 +12345") == "批号 2024+1 件，订单 +12345"  # no number


# --- the forms, the API and the import ----------------------------------------------------------------------------


def _raw_person(pk: int) -> tuple[str, str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT mobile, landline FROM customers_person WHERE id = %s", [pk])
        return cursor.fetchone()


def test_the_person_form_takes_a_hong_kong_mobile_and_a_macau_landline_encrypted(client_for, xiehe):
    client = client_for("kam")
    person = {"name": "陈大文", "role": "doctor", "institution": xiehe.pk, "tier": "new", "stage": "potential",
              "mobile": "+852 9123 4567", "landline": "+853 2837 3456"}  # fmt: skip
    page = client.post(reverse("customers:person-create"), person, **EN)
    assert page.status_code == 302, page.context["form"].errors
    chan = Person.objects.get(name="陈大文")
    assert (chan.mobile, chan.landline) == ("+85291234567", "+85328373456")
    assert chan.mobile_bidx == crypto.blind_index("+85291234567", "phone")
    mobile, landline = _raw_person(chan.pk)
    assert mobile.startswith("e1:") and "91234567" not in mobile and "28373456" not in landline
    shown = client.get(reverse("customers:person", args=[chan.pk]), **EN).content.decode()
    assert "+852 9123 4567" in shown and "+853 2837 3456" in shown


def test_the_person_form_refuses_an_hk_number_without_its_country_code_on_the_field(client_for, xiehe):
    client = client_for("kam")
    person = {"name": "陈大文", "role": "doctor", "institution": xiehe.pk, "tier": "new", "stage": "potential",
              "mobile": "9123 4567"}  # fmt: skip
    page = client.post(reverse("customers:person-create"), person, **EN)
    assert page.status_code == 200 and page.context["form"].errors["mobile"] == [MOBILE_MESSAGE]
    assert not Person.objects.filter(name="陈大文").exists()


def test_the_institution_form_takes_a_macau_pharmacys_number(client_for):
    page = client_for("kam").post(reverse("customers:institution-create"), {
        "name": "澳门仁伯爵药房", "kind": "pharmacy", "tier": "new", "stage": "potential",
        "phone": "+853 2837 3456"}, **EN)  # fmt: skip
    assert page.status_code == 302, page.context["form"].errors
    pharmacy = Institution.objects.get(name="澳门仁伯爵药房")
    assert pharmacy.phone_norm == "+85328373456"


def test_the_api_takes_a_taiwan_mobile_and_a_us_landline_and_masks_them_for_a_masked_role(api_for, xiehe):  # noqa: F811
    answer = api_for("kam").post("/api/v1/people/", {
        "name": "林志明", "institution": xiehe.pk, "mobile": "+886 912-345-678", "landline": "+1 (415) 555-0100"},
        format="json")  # fmt: skip
    assert answer.status_code == 201, answer.content
    lin = Person.objects.get(pk=answer.json()["id"])
    assert (lin.mobile, lin.landline) == ("+886912345678", "+14155550100")
    contact = api_for("agent").get(f"/api/v1/people/{lin.pk}/").json()["contact"]
    assert contact["masked"] is True
    assert (contact["mobile"], contact["landline"]) == ("+886 ****5678", "+1 ****0100")
    assert "345678" not in str(api_for("agent").get(f"/api/v1/people/{lin.pk}/").json())
    revealed = api_for("agent").get(f"/api/v1/people/{lin.pk}/", {"reveal_reason": "客户来电核实身份"}).json()["contact"]
    assert revealed["mobile"] == "+886 912 345 678"
    refused = api_for("kam").post("/api/v1/people/", {"name": "陈大文", "mobile": "9123 4567"}, format="json")
    assert refused.status_code == 400 and refused.json() == {"mobile": [MOBILE_MESSAGE]}


def test_the_import_takes_numbers_from_elsewhere_in_every_phone_column(users, xiehe, tmp_path, settings):
    settings.VAR_DIR = tmp_path
    people = _csv(tmp_path, "people.csv", [
        ["姓名", "所属机构", "手机", "座机", "外部编号"],
        ["陈大文", "北京协和医院", "+852 9123 4567", "+44 20 7946 0958", "HK-1"],
        ["林志明", "北京协和医院", "+886 912 345 678", "", "TW-1"],
        ["何伟", "北京协和医院", "9123 4567", "", "HK-2"],
    ])  # fmt: skip
    job = importer.import_file(people, "people", users["kam"], mode="good")
    with translation.override("en"):
        assert _errors(job) == [(4, "手机", MOBILE_MESSAGE)]
    chan = Person.objects.get(external_id="HK-1")
    assert (chan.mobile, chan.landline) == ("+85291234567", "+442079460958")
    assert Person.objects.get(external_id="TW-1").mobile == "+886912345678"
    assert "91234567" not in _raw_person(chan.pk)[0]
    # one phone column (电话): a mobile from elsewhere is the mobile, a fixed line the landline
    people = _csv(tmp_path, "people2.csv", [["姓名", "所属机构", "电话", "外部编号"],
                                            ["黄美玲", "北京协和医院", "+853 6612 3456", "MO-1"],
                                            ["黄志强", "北京协和医院", "+852 2812 3456", "HK-3"]])  # fmt: skip
    job = importer.import_file(people, "people", users["kam"], mode="good")
    assert _errors(job) == []
    assert Person.objects.get(external_id="MO-1").mobile == "+85366123456"
    assert Person.objects.get(external_id="HK-3").landline == "+85228123456"
    places = _csv(tmp_path, "institutions.csv", [["机构名称", "机构类型", "电话", "外部编号"],
                                                 ["澳门仁伯爵药房", "药店", "+853 2837 3456", "I-MO"]])  # fmt: skip
    job = importer.import_file(places, "institutions", users["kam"], mode="good")
    assert _errors(job) == []
    assert Institution.objects.get(external_id="I-MO").phone_norm == "+85328373456"


# --- search and duplicates ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("typed", ["+85291234567", "+852 9123 4567", "+852-9123-4567", "00852 9123 4567"])
def test_the_search_finds_the_person_by_the_number_however_it_is_spaced(api_for, users, typed):  # noqa: F811
    chan = services.create_person(users["kam"], {"name": "陈大文", "mobile": "+852 9123 4567"})
    hits = api_for("kam").get("/api/v1/search/", {"q": typed}).json()["results"]
    assert [(h["id"], h["match"], h["phone"]) for h in hits] == [(chan.pk, "phone", "+852 ****4567")]


def test_the_same_number_from_elsewhere_typed_differently_is_a_duplicate(users):
    first = services.create_person(users["kam"], {"name": "陈大文", "mobile": "+852 9123 4567"})
    second = services.create_person(users["kam"], {"name": "陈小文", "mobile": "00852-9123-4567"})
    assert (first.pk, "phone") in [(p.pk, why) for p, why in services.duplicates_of(second)]
    groups = [set(g.ids) for g in services.person_duplicates() if g.reason == "phone"]
    assert {first.pk, second.pk} in groups
