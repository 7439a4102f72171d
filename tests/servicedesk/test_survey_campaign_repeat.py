"""Repeating satisfaction survey campaigns: a campaign marked to repeat makes and starts the next period's campaign
by itself on the period's first working day at 09:00 Beijing (after 元旦 and 国庆 too) — once per period, even when
the job runs twice or the worker dies before its commit — tells who set it to repeat, and pauses with the reason
when that person may no longer run campaigns; the page's control, the API's field and the audit trail."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest
from django.core.exceptions import ValidationError
from django.db import transaction

from pharmacrm.core.models import AuditEntry
from pharmacrm.notify.models import Notification
from pharmacrm.servicedesk import campaigns
from pharmacrm.servicedesk.choices import CampaignStatus
from pharmacrm.servicedesk.models import CampaignTarget, SurveyCampaign
from tests.api.conftest import token_for

from .test_survey_campaigns import new_campaign, world  # noqa: F401

pytestmark = pytest.mark.django_db
BEIJING = ZoneInfo("Asia/Shanghai")
MINUTE = dt.timedelta(minutes=1)


@pytest.fixture
def repeating(users, world):  # noqa: F811
    """This quarter's campaign, started by hand, set to repeat by the manager."""
    campaign = new_campaign(users, province="110000")
    campaigns.start(users["manager"], campaign)
    return campaigns.set_repeat(users["manager"], SurveyCampaign.objects.get(pk=campaign.pk), True)


def made_from(template) -> list[SurveyCampaign]:
    return list(SurveyCampaign.objects.filter(repeated_from=template).order_by("period"))


def test_the_next_period_starts_on_its_first_working_day_at_nine_after_new_year_and_national_day():
    at = campaigns.repeat_moment
    assert at("2026Q4") == dt.datetime(2026, 10, 8, 9, 0, tzinfo=BEIJING)  # 国庆 1–7 October
    assert at("2027Q1") == dt.datetime(2027, 1, 4, 9, 0, tzinfo=BEIJING)  # 元旦 a Friday, then the weekend
    assert at("2026") == dt.datetime(2026, 1, 4, 9, 0, tzinfo=BEIJING)  # a Sunday worked in exchange (调休)
    assert at("2026Q2") == dt.datetime(2026, 4, 1, 9, 0, tzinfo=BEIJING)  # an ordinary Wednesday
    assert [campaigns.following(p) for p in ("2026Q4", "2026Q2", "2026H2", "2026H1", "2026")] == [
        "2027Q1", "2026Q3", "2027H1", "2026H2", "2027"]  # fmt: skip


def test_the_next_campaign_is_made_and_started_once_per_period_and_its_setter_told(users, repeating):
    template = repeating
    period = campaigns.following(campaigns.current_quarter())
    assert (template.repeat_next_period, template.repeat_next_at) == (period, campaigns.repeat_moment(period))
    due = template.repeat_next_at
    assert campaigns.start_repeats(now=due - MINUTE) == 0 and made_from(template) == []
    assert campaigns.start_repeats(now=due) == 1
    assert campaigns.start_repeats(now=due + MINUTE) == 0  # the job again: nothing more
    [made] = made_from(template)
    assert (made.period, made.province, made.status, made.created_by) == (
        period, "110000", CampaignStatus.SENDING, users["manager"])
    assert made.name == campaigns.default_name(period)
    assert CampaignTarget.objects.filter(campaign=made).count() == CampaignTarget.objects.filter(
        campaign=template).count()  # the same criteria, the same customers
    template.refresh_from_db()
    following = campaigns.following(period)
    assert (template.repeat_next_period, template.repeat_next_at) == (following, campaigns.repeat_moment(following))
    note = Notification.objects.get(recipient=users["manager"], kind="campaign.repeated")
    assert made.name in note.title and note.url == f"/service/surveys/{made.pk}/"
    created = AuditEntry.objects.get(object_type="servicedesk.surveycampaign", object_id=str(made.pk), action="create")
    assert created.actor_name == "system" and created.extra["repeated_from"] == template.pk
    # the period after: one more, not two
    assert campaigns.start_repeats(now=template.repeat_next_at) == 1
    assert [c.period for c in made_from(template)] == [period, following]


def test_a_worker_that_died_before_its_commit_left_nothing_and_the_next_run_makes_it_once(users, repeating):
    template = repeating
    due = template.repeat_next_at
    with pytest.raises(RuntimeError), transaction.atomic():
        assert campaigns.repeat_one(template.pk, due) is not None
        raise RuntimeError("the worker was killed before the commit")
    assert made_from(template) == [] and not Notification.objects.filter(kind="campaign.repeated").exists()
    assert SurveyCampaign.objects.get(pk=template.pk).repeat_next_at == due
    assert campaigns.start_repeats(now=due) == 1 and campaigns.start_repeats(now=due) == 0
    assert len(made_from(template)) == 1


def test_a_campaign_whose_setter_was_deactivated_is_paused_with_the_reason_and_taken_over(users, repeating, client_for):
    template = repeating
    manager = users["manager"]
    manager.is_active = False
    manager.save(update_fields=["is_active"])
    assert campaigns.start_repeats(now=template.repeat_next_at) == 0
    template.refresh_from_db()
    assert template.repeat and manager.display_name in template.repeat_paused and made_from(template) == []
    assert AuditEntry.objects.filter(object_type="servicedesk.surveycampaign", object_id=str(template.pk),
                                     changes__has_key="repeat_paused").exists()  # fmt: skip
    page = client_for("admin").get(f"/service/surveys/{template.pk}/", HTTP_ACCEPT_LANGUAGE="zh-hans").content.decode()
    assert 'id="campaign-repeat-paused"' in page and "恢复重复" in page
    # an administrator turns it on again: theirs from now on, and it runs
    r = client_for("admin").post(f"/service/surveys/{template.pk}/repeat/", {"repeat": "on",
                                                                            "version": template.version})  # fmt: skip
    assert r.status_code == 302
    template.refresh_from_db()
    assert (template.repeat_paused, template.repeat_by) == ("", users["admin"])
    assert campaigns.start_repeats(now=template.repeat_next_at) == 1
    assert Notification.objects.filter(recipient=users["admin"], kind="campaign.repeated").count() == 1


@pytest.mark.parametrize("lang, on, off", [("zh-hans", "每季度重复", "停止重复"), ("en", "Repeat every quarter", "Stop repeating"),
                                           ("zh-hant", "每季度重複", "停止重複")])  # fmt: skip
def test_the_page_turns_repeating_on_and_off_in_each_language(users, world, client_for, lang, on, off):  # noqa: F811
    campaign = new_campaign(users, province="110000")
    manager = client_for("manager")
    url = f"/service/surveys/{campaign.pk}/"
    assert on in manager.get(url, HTTP_ACCEPT_LANGUAGE=lang).content.decode()
    assert on not in client_for("analyst").get(url, HTTP_ACCEPT_LANGUAGE=lang).content.decode()  # reads, no control
    assert client_for("analyst").post(f"{url}repeat/", {"repeat": "on"}).status_code == 403
    r = manager.post(f"{url}repeat/", {"repeat": "on", "version": campaign.version}, HTTP_ACCEPT_LANGUAGE=lang)
    assert r.status_code == 302 and SurveyCampaign.objects.get(pk=campaign.pk).repeat
    assert off in manager.get(url, HTTP_ACCEPT_LANGUAGE=lang).content.decode()
    r = manager.post(f"{url}repeat/", {"repeat": "off", "version": campaign.version + 1})
    assert r.status_code == 302
    campaign.refresh_from_db()
    assert (campaign.repeat, campaign.repeat_next_at) == (False, None)
    changes = [e.changes["repeat"] for e in AuditEntry.objects.filter(
        object_type="servicedesk.surveycampaign", object_id=str(campaign.pk), changes__has_key="repeat").order_by("id")]
    assert changes == [[False, True], [True, False]]


def test_the_api_field_turns_repeating_on_for_a_started_campaign_and_refuses_it_on_a_made_one(users, repeating):
    from rest_framework.test import APIClient

    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {token_for(users['manager'])}", HTTP_ACCEPT_LANGUAGE="en")
    stopped = campaigns.set_repeat(users["manager"], repeating, False)
    r = api.patch(f"/api/v1/survey-campaigns/{repeating.pk}/", {"repeat": True, "version": stopped.version},
                  format="json")  # fmt: skip
    assert r.status_code == 200, r.content
    body = r.json()
    assert body["repeat"] is True and body["repeat_every"] == "quarter" and body["repeat_paused"] == ""
    assert body["repeat_next_period"] == campaigns.following(campaigns.current_quarter())
    r = api.patch(f"/api/v1/survey-campaigns/{repeating.pk}/", {"repeat": False, "version": 1}, format="json")
    assert r.status_code == 409
    campaigns.start_repeats(now=SurveyCampaign.objects.get(pk=repeating.pk).repeat_next_at)
    [made] = made_from(repeating)
    r = api.patch(f"/api/v1/survey-campaigns/{made.pk}/", {"repeat": True, "version": made.version}, format="json")
    assert r.status_code == 400 and repeating.name in r.json()["repeat"][0]
    with pytest.raises(ValidationError):
        campaigns.set_repeat(users["manager"], made, True)
