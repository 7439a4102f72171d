"""Session 57 (API QA): a name or code typed by hand that another record has already was refused in Django's words —
"具有 名称 的 答复模板 已存在。", "answer template with this name already exists." — which read badly and do not say
which value clashed. The catalogues managers name by hand now refuse a duplicate naming the field and the value,
on the pages and through the API alike, and nothing is saved."""

from __future__ import annotations

import pytest

from pharmacrm.core.models import Team
from pharmacrm.servicedesk.models import (
    AnswerTemplate,
    AssignmentRule,
    BusinessCalendar,
    EscalationRule,
    Product,
    SlaPolicy,
    TicketCategory,
)

pytestmark = pytest.mark.django_db

PRODUCT = {"brand_name": "安心宁", "generic_name": "盐酸氨氯地平片", "approval_number": "国药准字H20249871",
           "dosage_form": "片剂", "strength": "5mg"}  # fmt: skip
CATEGORY = {"code": "cold_chain", "name": "冷链问题", "default_priority": "high", "default_complexity": "general"}


def _cases():
    calendar = BusinessCalendar.objects.order_by("id").first().code
    team = Team.objects.order_by("id").first() or Team.objects.create(name="客服一组")
    return [
        ("/api/v1/answer-templates/", {"name": "问候", "body": "您好"}, AnswerTemplate, "name",
         "An answer template named “问候” exists already: choose another name."),
        ("/api/v1/products/", PRODUCT, Product, "approval_number",
         "A product with the approval number 国药准字H20249871 is in the catalogue already: one approval number is "
         "one product."),
        ("/api/v1/ticket-categories/", CATEGORY, TicketCategory, "code",
         "A ticket category with the code “cold_chain” exists already: choose another code."),
        ("/api/v1/sla-policies/", {"name": "加急", "priority": "urgent", "first_response": 1, "first_response_unit":
                                   "hours", "resolution": 1, "resolution_unit": "days", "calendar": calendar},
         SlaPolicy, "name", "An SLA policy named “加急” exists already: choose another name."),
        ("/api/v1/calendars/", {"code": "night", "name": "夜班", "windows": [["18:00", "24:00"]]}, BusinessCalendar,
         "name", "A calendar named “夜班” exists already: choose another name."),
        ("/api/v1/escalation-rules/", {"level": 4, "after_minutes": 960, "notify": "manager"}, EscalationRule, "level",
         "The escalation ladder has a level 4 already: change that level, or choose another number."),
        ("/api/v1/assignment-rules/", {"name": "VIP", "team": team.pk}, AssignmentRule, "name",
         "An assignment rule named “VIP” exists already: choose another name."),
    ]  # fmt: skip


def test_a_duplicate_through_the_api_is_refused_naming_the_field_and_the_value(api_for, users):
    admin = api_for("admin", lang="en")
    for url, body, model, field, message in _cases():
        first = admin.post(url, body, format="json")
        assert first.status_code == 201, (url, first.content)
        count = model.objects.count()

        again = admin.post(url, body, format="json")

        assert again.status_code == 400, (url, again.content)
        assert message in again.json()[field], (url, again.json())
        assert model.objects.count() == count


def test_a_calendars_code_taken_is_named_too(api_for, users):
    admin = api_for("admin", lang="en")
    taken = BusinessCalendar.objects.order_by("id").first().code

    response = admin.post("/api/v1/calendars/", {"code": taken, "name": "另一个日历"}, format="json")

    assert response.status_code == 400
    assert response.json()["code"] == [f"A calendar with the code “{taken}” exists already: choose another code."]


def test_renaming_an_answer_template_to_a_name_taken_is_refused_and_changes_nothing(api_for, users):
    admin = api_for("admin", lang="en")
    admin.post("/api/v1/answer-templates/", {"name": "问候", "body": "您好"}, format="json")
    other = admin.post("/api/v1/answer-templates/", {"name": "致谢", "body": "感谢来电"}, format="json").json()

    response = admin.patch(f"/api/v1/answer-templates/{other['id']}/", {"name": "问候", "version": other["version"]},
                           format="json")  # fmt: skip

    assert response.status_code == 400
    assert response.json()["name"] == ["An answer template named “问候” exists already: choose another name."]
    assert AnswerTemplate.objects.get(pk=other["id"]).name == "致谢"


def test_the_pages_refuse_a_duplicate_in_the_same_words(client_for, users):
    client = client_for("admin")
    template = {"name": "问候", "language": "zh-hans", "body": "您好", "active": "on"}
    category = {**CATEGORY, "low_score_action": "action", "position": "0", "active": "on"}
    pages = [
        ("/service/knowledge/templates/new/", template, AnswerTemplate,
         "An answer template named “问候” exists already: choose another name."),
        ("/service/knowledge/products/new/", {**PRODUCT, "active": "on"}, Product,
         "A product with the approval number 国药准字H20249871 is in the catalogue already"),
        ("/service/settings/categories/new/", category, TicketCategory,
         "A ticket category with the code “cold_chain” exists already: choose another code."),
    ]  # fmt: skip
    for url, data, model, message in pages:
        first = client.post(url, data, HTTP_ACCEPT_LANGUAGE="en")
        assert first.status_code == 302, (url, first.content.decode()[-3000:])
        count = model.objects.count()

        again = client.post(url, data, HTTP_ACCEPT_LANGUAGE="en")

        page = again.content.decode()
        assert message in page, url
        assert "already exists" not in page, url
        assert model.objects.count() == count
