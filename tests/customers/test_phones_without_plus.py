"""Session 61: a number from Hong Kong, Macau, Taiwan or abroad written without its "+" — (852) 9123 4567,
(+852) 9123 4567, 00852 9123 4567, 852-9123-4567 — or with an extension after a dash (+1 415 555 0100-12) was shown in
clear in a free text (a customer's notes, a ticket's subject, the audit trail) to the roles that see personal data
masked, and the search box did not find the person by it. It is masked as +852 ****4567 and found; what is no phone
number (an order, batch or credit code, an amount, a date) is left as typed."""

from __future__ import annotations

import pytest

from pharmacrm.core.models import AuditEntry
from pharmacrm.customers import normalise, services
from pharmacrm.customers.models import Person
from pharmacrm.servicedesk.models import Ticket
from tests.api.conftest import api_for  # noqa: F401  (fixture)
from tests.servicedesk.conftest import intake, raise_ticket  # noqa: F401  (fixture)

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("typed", "shown"),
    [
        ("请回电 (852) 9123 4567", "请回电 +852 ****4567"),
        ("请回电（852）9123 4567。", "请回电+852 ****4567。"),
        ("请回电 (+852) 9123 4567", "请回电 +852 ****4567"),
        ("（＋８５２）９１２３ ４５６７", "+852 ****4567"),
        ("家属 852-9123-4567，下午", "家属 +852 ****4567，下午"),
        ("家属 852 9123 4567", "家属 +852 ****4567"),
        ("电话85291234567谢谢", "电话+852 ****4567谢谢"),
        ("澳门 853 6612 3456 和台湾 886 912 345 678", "澳门 +853 ****3456 和台湾 +886 ****5678"),
        ("伦敦 0044 20 7946 0958。", "伦敦 +44 ****0958。"),
        ("伦敦 (44) 20 7946 0958", "伦敦 +44 ****0958"),
        ("00852 9123 4567", "+852 ****4567"),
        ("US office +1 (415) 555-0100, ask for Li", "US office +1 ****0100, ask for Li"),
        ("办公室 +852 2345 6789-123", "办公室 +852 ****6789"),
        ("office +1 415 555 0100-12", "office +1 ****0100"),
        ("办公室 (852) 2812 3456 - 123 找陈先生", "办公室 +852 ****3456 找陈先生"),
    ],
)
def test_a_number_from_elsewhere_written_without_its_plus_is_masked_and_restored(typed, shown):
    assert normalise.mask_contacts(typed) == shown
    assert normalise.restore_contacts(shown, typed) == typed  # an edit of the masked text keeps the number


@pytest.mark.parametrize(
    "text",
    [
        "订单 852-1234-5678 未到货",  # no Hong Kong number starts with 1
        "订单号 852912345678",  # a digit too many
        "批号 852-2024-0001",
        "批号 B8529123456",
        "金额 852 元，共 886 件",
        "2024-08-52 回访",
        "统一社会信用代码 91440300MA5F852912",
        "(1) 2023 1215 复诊",  # a list's first item, then a date
        "剂量 10-20 mg，+2 天后好转",
        "批号 2024+1 件，订单 +12345",
        "订单100852 9123 4567",
    ],
)
def test_numbers_that_are_no_phone_are_left_as_typed(text):
    assert normalise.mask_contacts(text) == text


# --- Session 62: any country's code before the number's groups, without +, brackets or 00 ------------------------


@pytest.mark.parametrize(
    ("typed", "shown"),
    [
        ("Son in the US: 1-415-555-0100.", "Son in the US: +1 ****0100."),
        ("请回电 1 (415) 555-0100，谢谢", "请回电 +1 ****0100，谢谢"),
        ("1(415)555-0100", "+1 ****0100"),
        ("1 415 555 0100", "+1 ****0100"),
        ("1.415.555.0100", "+1 ****0100"),
        ("伦敦 44 20 7946 0958。", "伦敦 +44 ****0958。"),
        ("001-415-555-0100", "+1 ****0100"),
        ("办公室 1-415-555-0100-12", "办公室 +1 ****0100"),  # and its extension
        ("莫斯科 7 495 123-45-67", "莫斯科 +7 ****4567"),
        ("东京 81 3-1234-5678", "东京 +81 ****5678"),
        ("新加坡 65 6123 4567，美国 1 212 555 0199", "新加坡 +65 ****4567，美国 +1 ****0199"),
    ],
)
def test_a_number_written_in_its_countrys_groups_without_a_plus_is_masked_and_restored(typed, shown):
    assert normalise.mask_contacts(typed) == shown
    assert normalise.restore_contacts(shown, typed) == typed


@pytest.mark.parametrize(
    "text",
    [
        "1 4155 550 100",  # valid digits, not grouped as a US number is
        "1-415-5550100",
        "4 4207 946 0958",
        "1 380 013 8000",  # grouped so, but no valid US number
        "(1) 415 555 0100",  # a list's first item
        "3.1 415 555 0100",
        "金额 1 250 000 元，数量 7 800 000 盒",  # thousands
        "工单 TK-2026-000123，订单 XS260101-0001，合作协议 HZ-2026-0001",  # the project's own numbers
        "2026.03.15 复诊，2024-08-15 回访，ISO 9001 2015",
        "价格 1.99-2.99",
        "订单号 1-415-555-0100",  # named an order number
    ],
)
def test_digits_not_grouped_as_a_number_from_elsewhere_are_left_as_typed(text):
    assert normalise.mask_contacts(text) == text


@pytest.mark.parametrize("typed", ["1-415-555-0100", "1 (415) 555-0100", "001-415-555-0100", "1 415 555 0100"])
def test_the_search_box_and_the_desk_find_a_us_number_written_without_its_plus(api_for, client_for, users,  # noqa: F811
                                                                              typed):
    """Its digits also make a mainland 141…: the number from elsewhere is read first, the mainland one too."""
    smith = services.create_person(users["kam"], {"name": "史密斯", "mobile": "+1 415 555 0100"})
    hits = api_for("kam").get("/api/v1/search/", {"q": typed}).json()["results"]
    assert [(h["id"], h["match"]) for h in hits] == [(smith.pk, "phone")]
    page = client_for("kam").get("/customers/search/", {"q": typed}).content.decode()
    assert f"/customers/people/{smith.pk}/" in page
    agent = client_for("agent")
    assert intake(agent, caller_phone="+1 415 555 0100").status_code == 302
    ticket = Ticket.objects.get()
    assert f'/service/tickets/{ticket.pk}/"' in agent.get("/service/", {"q": typed}).content.decode()


def test_the_search_finds_a_london_number_and_audits_a_masked_look_up_masked(api_for, users):  # noqa: F811
    services.create_person(users["kam"], {"name": "布朗", "landline": "+44 20 7946 0958"})
    hits = api_for("analyst").get("/api/v1/search/", {"q": "44 20 7946 0958"}).json()["results"]
    assert [h["name"] for h in hits] == ["布朗"]
    hits = api_for("analyst").get("/api/v1/search/", {"q": "1-415-555-0100"}).json()["results"]
    assert hits == []
    entries = AuditEntry.objects.filter(action=AuditEntry.Action.READ_PERSONAL, object_repr="search")
    assert sorted(e.extra["q"] for e in entries) == ["+1 ****0100", "+44 ****0958"]


def test_a_mainland_number_typed_in_the_search_box_still_finds_the_mainland_person(api_for, users):  # noqa: F811
    li = services.create_person(users["kam"], {"name": "李雷", "mobile": "14155550100"})
    hits = api_for("kam").get("/api/v1/search/", {"q": "141 5555 0100"}).json()["results"]
    assert [h["id"] for h in hits] == [li.pk]
    hits = api_for("kam").get("/api/v1/search/", {"q": "1-415-555-0100"}).json()["results"]
    assert [h["id"] for h in hits] == [li.pk]  # the mainland reading of the digits is looked up too


def test_a_persons_notes_and_a_tickets_subject_are_masked_for_a_masked_role(client_for, api_for, xiehe, admin_user,  # noqa: F811
                                                                            raise_ticket):  # noqa: F811
    notes = "家属电话 (852) 9123 4567，备用 852-6123-4567"
    person = Person.objects.get(name="张伟", institution=xiehe)
    services.update_person(admin_user, person, {"notes": notes}, version=person.version)
    page = client_for("agent").get(f"/customers/people/{person.pk}/").content.decode()
    assert "家属电话 +852 ****4567，备用 +852 ****4567" in page
    assert "9123 4567" not in page and "6123-4567" not in page
    assert api_for("agent").get(f"/api/v1/people/{person.pk}/").json()["notes"] == (
        "家属电话 +852 ****4567，备用 +852 ****4567"
    )
    assert api_for("kam").get(f"/api/v1/people/{person.pk}/").json()["notes"] == notes
    auditor = client_for("auditor").get("/accounts/audit/", {"object_type": "customers.person"}).content.decode()
    assert "+852 ****4567" in auditor and "9123 4567" not in auditor
    ticket = raise_ticket(subject="请回电 00852 9123 4567")
    page = client_for("agent").get(f"/service/tickets/{ticket.pk}/").content.decode()
    assert "请回电 +852 ****4567" in page and "9123 4567" not in page


@pytest.mark.parametrize("typed", ["(852) 9123 4567", "(+852) 9123 4567", "852-9123-4567", "852 9123 4567",
                                   "85291234567", "（８５２）９１２３－４５６７"])  # fmt: skip
def test_the_search_box_finds_the_person_by_the_number_written_without_its_plus(api_for, client_for, users, typed):  # noqa: F811
    chan = services.create_person(users["kam"], {"name": "陈大文", "mobile": "+852 9123 4567"})
    hits = api_for("kam").get("/api/v1/search/", {"q": typed}).json()["results"]
    assert [(h["id"], h["match"], h["phone"]) for h in hits] == [(chan.pk, "phone", "+852 ****4567")]
    page = client_for("kam").get("/customers/search/", {"q": typed}).content.decode()
    assert f"/customers/people/{chan.pk}/" in page


def test_the_search_finds_an_institution_and_audits_a_masked_look_up_masked(api_for, client_for, users):  # noqa: F811
    services.create_person(users["kam"], {"name": "陈大文", "mobile": "+852 9123 4567"})
    pharmacy = services.create_institution(users["kam"], {"name": "澳门仁伯爵药房", "kind": "pharmacy",
                                                          "phone": "+853 2837 3456"})  # fmt: skip
    hits = api_for("kam").get("/api/v1/search/", {"q": "853-2837-3456"}).json()["results"]
    assert [h["id"] for h in hits] == [pharmacy.pk]
    hits = api_for("analyst").get("/api/v1/search/", {"q": "852-9123-4567"}).json()["results"]
    assert [h["name"] for h in hits] == ["陈大文"]
    [entry] = AuditEntry.objects.filter(action=AuditEntry.Action.READ_PERSONAL, object_repr="search")
    assert entry.extra["q"] == "+852 ****4567"


def test_the_desks_queue_search_finds_a_callers_number_written_without_its_plus(users, client_for):
    agent = client_for("agent")
    assert intake(agent, caller_phone="+852 9123 4567").status_code == 302
    ticket = Ticket.objects.get()
    for typed in ("852-9123-4567", "(852) 9123 4567", "(+852) 9123 4567", "852 9123 4567"):
        html = agent.get("/service/", {"q": typed}).content.decode()
        assert f'/service/tickets/{ticket.pk}/"' in html, typed
