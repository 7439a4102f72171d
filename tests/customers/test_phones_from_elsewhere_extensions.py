"""Numbers from Hong Kong, Macau, Taiwan and abroad written with an extension, as mainland ones are: a landline's
extension after a dash (+852 2345 6789-123, +1 415 555 0100-12) is taken as 转, 分机 and ext are, and kept; a
mobile's extension, however written (+852 9123 4567 转 8, +852 9123 4567-8), is refused in the words a mainland
mobile's is ("a mobile number takes no extension"), not as an invalid number, on the field, in English and Chinese.
(Session 61; the rule itself: test_phones_from_elsewhere.py.)"""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError
from django.test import Client
from django.urls import reverse
from django.utils import translation

from pharmacrm.core import crypto
from pharmacrm.customers import importer, normalise
from pharmacrm.customers.models import Institution, Person
from pharmacrm.servicedesk.models import Ticket
from tests.api.conftest import api_for  # noqa: F401  (fixture)
from tests.customers.test_qa_round35_entry_paths import NO_EXTENSION, _csv, _errors
from tests.servicedesk.conftest import intake, public_form

pytestmark = pytest.mark.django_db
EN = {"HTTP_ACCEPT_LANGUAGE": "en"}
ZH = {"HTTP_ACCEPT_LANGUAGE": "zh-hans"}
NO_EXTENSION_EN = "A mobile number takes no extension: enter the number alone. Extensions (转123) belong to landlines."


# --- 1. a landline's extension after a dash ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "typed, stored",
    [("+852 2345 6789-123", "+85223456789转123"), ("+1 415 555 0100-12", "+14155550100转12"),
     ("00852 2812 3456-99", "+85228123456转99"), ("(852) 2812 3456 - 123", "+85228123456转123"),
     ("+44 20 7946 0958-12", "+442079460958转12"), ("＋８５３ ２８３７ ３４５６－８", "+85328373456转8"),
     ("+886 2 2345 6789 分机 8021", "+886223456789转8021"), ("+852 2345 6789 ext. 123", "+85223456789转123")],
)  # fmt: skip
def test_a_landline_from_elsewhere_takes_its_extension_after_a_dash_as_a_mainland_one(typed, stored):
    assert normalise.validate_landline_with_extension(typed) == stored
    assert normalise.validate_any_phone(typed) == stored.partition("转")[0]
    assert normalise.phone(typed) == stored.partition("转")[0]  # the blind index: the line alone
    assert normalise.phone_key(typed) == stored  # the duplicate check: extension included


@pytest.mark.parametrize("typed", ["+852-9123-4567", "+1-415-555-0100", "+852 2812-3456"])
def test_a_number_from_elsewhere_written_with_dashes_is_still_one_number(typed):
    """The last group after a dash is an extension only when what comes before it is a whole number and all of the
    digits together are none."""
    assert normalise.extension(typed) == ""
    assert normalise.validate_any_phone(typed) == normalise.phone(typed.replace("-", " "))


def test_the_person_form_keeps_a_hong_kong_landlines_extension(client_for, xiehe):
    page = client_for("kam").post(reverse("customers:person-create"), {
        "name": "陈大文", "role": "doctor", "institution": xiehe.pk, "tier": "new", "stage": "potential",
        "landline": "+852 2345 6789-123"}, **EN)  # fmt: skip
    assert page.status_code == 302, page.context["form"].errors
    chan = Person.objects.get(name="陈大文")
    assert chan.landline == "+85223456789转123"
    assert chan.landline_bidx == crypto.blind_index("+85223456789", "phone")


def test_an_institution_and_a_caller_keep_a_us_number_with_its_extension(client_for, users):
    """A US number may be a mobile or a fixed line: in a field that takes any number its extension is a line's."""
    page = client_for("kam").post(reverse("customers:institution-create"), {
        "name": "旧金山华人药房", "kind": "pharmacy", "tier": "new", "stage": "potential",
        "phone": "+1 415 555 0100-12"}, **EN)  # fmt: skip
    assert page.status_code == 302, page.context["form"].errors
    assert Institution.objects.get(name="旧金山华人药房").phone_norm == "+14155550100"
    assert intake(client_for("agent"), caller_phone="+1 415 555 0100-12").status_code == 302
    assert Ticket.objects.get().caller_phone_bidx == crypto.blind_index("+14155550100", "phone")


def test_the_import_takes_a_landline_from_elsewhere_with_its_extension(users, xiehe, tmp_path, settings):
    settings.VAR_DIR = tmp_path
    people = _csv(tmp_path, "people.csv", [["姓名", "所属机构", "座机", "外部编号"],
                                           ["陈大文", "北京协和医院", "+852 2345 6789-123", "HK-1"]])  # fmt: skip
    job = importer.import_file(people, "people", users["kam"], mode="good")
    assert _errors(job) == []
    assert Person.objects.get(external_id="HK-1").landline == "+85223456789转123"
    # the one phone column (电话): a fixed line with its extension is the landline
    people = _csv(tmp_path, "people2.csv", [["姓名", "所属机构", "电话", "外部编号"],
                                            ["林志明", "北京协和医院", "+1 415 555 0100-12", "US-1"]])  # fmt: skip
    job = importer.import_file(people, "people", users["kam"], mode="good")
    assert _errors(job) == []
    assert Person.objects.get(external_id="US-1").landline == "+14155550100转12"


# --- 4. a mobile's extension, however written, said to be one -----------------------------------------------------


MOBILES_FROM_ELSEWHERE_WITH_EXTENSION = (
    "+852 9123 4567 转 8", "+852 9123 4567-8", "(852) 9123 4567-8", "00853 6612 3456-12", "+886 912 345 678 ext 12",
    "＋８５２ ９１２３ ４５６７－８", "+852 9123 4567 轉 8",
)  # fmt: skip


@pytest.mark.parametrize("typed", MOBILES_FROM_ELSEWHERE_WITH_EXTENSION)
def test_a_mobile_from_elsewhere_with_an_extension_is_refused_as_a_mainland_one(typed):
    for validate in (normalise.validate_mobile, normalise.validate_any_phone):
        with pytest.raises(ValidationError) as exc:
            validate(typed)
        assert exc.value.code == "mobile_extension"
        with translation.override("en"):
            assert exc.value.messages == [NO_EXTENSION_EN]  # the message is read in the reader's language
        with translation.override("zh-hans"):
            assert exc.value.messages == [NO_EXTENSION]


@pytest.mark.parametrize("headers, message", [(EN, NO_EXTENSION_EN), (ZH, NO_EXTENSION)])
def test_the_person_form_says_so_on_the_mobile_field(client_for, xiehe, headers, message):
    page = client_for("kam").post(reverse("customers:person-create"), {
        "name": "陈大文", "role": "doctor", "institution": xiehe.pk, "tier": "new", "stage": "potential",
        "mobile": "+852 9123 4567-8"}, **headers)  # fmt: skip
    assert page.status_code == 200
    assert page.context["form"].errors["mobile"] == [message]
    assert not Person.objects.filter(name="陈大文").exists()


def test_the_api_the_desk_and_the_import_say_so_too(api_for, users, xiehe, client_for, tmp_path, settings):  # noqa: F811
    answer = api_for("kam").post("/api/v1/people/", {"name": "陈大文", "institution": xiehe.pk,
                                                     "mobile": "+852 9123 4567-8"}, format="json", **EN)  # fmt: skip
    assert answer.status_code == 400 and answer.json() == {"mobile": [NO_EXTENSION_EN]}
    response = intake(client_for("agent"), caller_phone="+852 9123 4567-8")
    assert response.context["form"].errors["caller_phone"] == [NO_EXTENSION]
    response = Client(HTTP_ACCEPT_LANGUAGE="en").post("/help/", public_form(phone="+852 9123 4567 转 8"))
    assert response.context["form"].errors["phone"] == [NO_EXTENSION_EN]
    assert not Ticket.objects.exists()
    settings.VAR_DIR = tmp_path
    people = _csv(tmp_path, "people.csv", [["姓名", "所属机构", "手机", "外部编号"],
                                           ["陈大文", "北京协和医院", "+852 9123 4567-8", "HK-1"]])  # fmt: skip
    job = importer.import_file(people, "people", users["kam"], mode="good")
    with translation.override("en"):
        assert _errors(job) == [(2, "手机", NO_EXTENSION_EN)]
    with translation.override("zh-hans"):
        assert _errors(job) == [(2, "手机", NO_EXTENSION)]
