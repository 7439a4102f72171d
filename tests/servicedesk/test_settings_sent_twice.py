"""A settings page's create form sent twice (a double click on Save, Back and Save): the second sending answered
"name taken" — the first had created the record — instead of leading to it. Each create form now carries a one-time
token: the second sending creates nothing and shows the record the first one created."""

from __future__ import annotations

import re

import pytest

from pharmacrm.core.models import Team
from pharmacrm.servicedesk.models import (
    AnswerTemplate,
    AssignmentRule,
    BusinessCalendar,
    EscalationRule,
    Product,
    SlaPolicy,
    SurveyCampaign,
    TicketCategory,
)

pytestmark = pytest.mark.django_db

SENT_AGAIN = "This form was already sent: the record was created then, and not a second time."


def _token(page: str) -> str:
    return re.search(r'name="form_token" value="([A-Za-z0-9_-]+)"', page).group(1)


def _pages():
    """(create page, what it is sent, the model, the URL of what it created) of every service-desk settings form."""
    calendar = BusinessCalendar.objects.get(code="always").pk
    team = Team.objects.create(name="客服三组")
    return [
        ("/service/settings/categories/new/", {
            "code": "cold_chain", "name": "冷链问题", "default_priority": "high", "default_complexity": "general",
            "low_score_action": "action", "position": "0", "active": "on"}, TicketCategory,
         lambda o: f"/service/settings/categories/{o.pk}/"),
        ("/service/settings/sla/new/", {
            "name": "加急", "priority": "urgent", "complexity": "", "category": "", "customer_tier": "",
            "calendar": calendar, "first_response": "1", "first_response_unit": "hours", "resolution": "1",
            "resolution_unit": "days", "position": "5", "active": "on"}, SlaPolicy,
         lambda o: f"/service/settings/sla/{o.pk}/"),
        ("/service/settings/escalation/new/", {
            "level": "4", "after_minutes": "960", "notify": "manager", "cooldown_minutes": "30", "active": "on"},
         EscalationRule, lambda o: f"/service/settings/escalation/{o.pk}/"),
        ("/service/settings/calendars/new/", {
            "code": "night", "name": "夜班", "time_zone": "Asia/Shanghai", "windows": "20:00-23:30",
            "workdays": ["5", "6"], "official_holidays": "on"}, BusinessCalendar,
         lambda o: f"/service/settings/calendars/{o.code}/"),
        ("/service/assignment/rules/new/", {"name": "VIP", "team": team.pk, "method": "queue", "active": "on"},
         AssignmentRule, lambda o: f"/service/assignment/rules/{o.pk}/"),
        ("/service/knowledge/templates/new/", {"name": "问候", "language": "zh-hans", "body": "您好", "active": "on"},
         AnswerTemplate, lambda o: f"/service/knowledge/templates/{o.pk}/edit/"),
        ("/service/knowledge/products/new/", {
            "brand_name": "安心宁", "generic_name": "盐酸氨氯地平片", "approval_number": "国药准字H20249871",
            "dosage_form": "片剂", "strength": "5mg", "active": "on"}, Product,
         lambda o: f"/service/knowledge/products/{o.pk}/"),
    ]  # fmt: skip


def test_a_settings_create_form_sent_twice_creates_one_and_shows_it(client_for, users):
    admin = client_for("admin")
    for url, data, model, page_of in _pages():
        before = set(model.objects.values_list("pk", flat=True))
        form = {**data, "form_token": _token(admin.get(url).content.decode())}

        first = admin.post(url, form, HTTP_ACCEPT_LANGUAGE="en")
        again = admin.post(url, form, HTTP_ACCEPT_LANGUAGE="en", follow=True)  # the second click

        assert first.status_code == 302, (url, first.content.decode()[-2000:])
        created = model.objects.exclude(pk__in=before)
        assert created.count() == 1, url  # one record, not two
        assert again.redirect_chain[-1][0] == page_of(created.get()), (url, again.redirect_chain)
        page = again.content.decode()
        assert again.status_code == 200 and SENT_AGAIN in page, url
        assert "exists already" not in page and "has a level 4 already" not in page, url


def test_a_new_form_is_a_new_record_and_a_refused_one_can_be_sent_again(client_for, users):
    admin = client_for("admin")
    url = "/service/knowledge/templates/new/"
    data = {"name": "问候", "language": "zh-hans", "body": "您好", "active": "on"}
    refused = admin.post(url, {**data, "body": "", "form_token": (token := _token(admin.get(url).content.decode()))},
                         HTTP_ACCEPT_LANGUAGE="en")  # fmt: skip
    assert refused.status_code == 400 and _token(refused.content.decode()) == token  # kept, for the corrected form

    assert admin.post(url, {**data, "form_token": token}).status_code == 302
    other = admin.post(url, {**data, "name": "致谢", "form_token": _token(admin.get(url).content.decode())})

    assert other.status_code == 302
    assert sorted(AnswerTemplate.objects.values_list("name", flat=True)) == ["致谢", "问候"]


def test_the_new_survey_campaign_form_sent_twice_prepares_one(client_for, users, xiehe):
    manager = client_for("manager")
    page = manager.get("/service/surveys/").content.decode()
    form = {"name": "第一季度回访", "period": "", "form_token": _token(page)}

    first = manager.post("/service/surveys/new/", form)
    again = manager.post("/service/surveys/new/", form, HTTP_ACCEPT_LANGUAGE="en", follow=True)

    campaign = SurveyCampaign.objects.get()
    assert first.status_code == 302, first.content.decode()[-2000:]
    assert again.redirect_chain[-1][0] == f"/service/surveys/{campaign.pk}/"
    assert SENT_AGAIN in again.content.decode()
