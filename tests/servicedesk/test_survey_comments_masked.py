"""A survey's comment is what a customer wrote (请致电 139…, an e-mail address) or an agent noted from the call: the
roles that see personal data masked read the contact details in it masked — the campaign page's answers, the
campaign's export, the campaign results and the revisit surveys in the API — as they read the contact person's
e-mail beside it; those who see personal data read it as typed."""

from __future__ import annotations

import io

import pytest
from openpyxl import load_workbook

from pharmacrm.servicedesk import campaigns
from pharmacrm.servicedesk.models import CampaignTarget, Survey, Ticket
from tests.servicedesk.test_survey_campaigns import _english, new_campaign, world  # noqa: F401

pytestmark = pytest.mark.django_db

COMMENT = "送货太慢，请致电 139 1234 5678 或写信 li.buyer@example.com"
SHOWN = "送货太慢，请致电 139****5678 或写信 l***@example.com"


@pytest.fixture
def answered(users, world):  # noqa: F811
    campaign = new_campaign(users, province="110000")
    campaigns.start(users["manager"], campaign)
    target = CampaignTarget.objects.get(campaign=campaign, institution=world["xiehe"])
    campaigns.record_phone(users["agent"], target, 2, COMMENT, 3)
    return campaign


def _sheet_text(content: bytes) -> str:
    book = load_workbook(io.BytesIO(content))
    return "\n".join(str(c.value) for row in book.active.iter_rows() for c in row if c.value is not None)


@pytest.mark.parametrize("role", ["analyst", "auditor"])
def test_a_masked_reader_reads_the_comment_masked_on_the_page_in_the_export_and_the_api(client_for, answered, role):
    client = client_for(role)
    page = client.get(f"/service/surveys/{answered.pk}/").content.decode()
    assert SHOWN in page and "139 1234 5678" not in page and "li.buyer@example.com" not in page
    export = client.get(f"/service/surveys/{answered.pk}/export.xlsx")
    assert export.status_code == 200
    text = _sheet_text(export.content)
    assert SHOWN in text and "li.buyer@example.com" not in text
    [answer] = client.get(f"/api/v1/survey-campaigns/{answered.pk}/results/").json()["answers"]
    assert answer["comment"] == SHOWN


def test_the_manager_reads_it_as_typed(client_for, answered):
    client = client_for("manager")
    assert COMMENT in client.get(f"/service/surveys/{answered.pk}/").content.decode()
    assert COMMENT in _sheet_text(client.get(f"/service/surveys/{answered.pk}/export.xlsx").content)
    [answer] = client.get(f"/api/v1/survey-campaigns/{answered.pk}/results/").json()["answers"]
    assert answer["comment"] == COMMENT


def test_a_revisit_comment_in_the_survey_api_and_on_the_ticket_page(users, xiehe, client_for):
    from pharmacrm.servicedesk import services

    ticket = services.create_ticket(users["agent"], {"subject": "配送延迟", "institution": xiehe, "channel": "phone", "category": "drug_info"})
    Survey.objects.create(ticket=ticket, channel="phone", score=2, comment=COMMENT, recorded_by=users["agent"],
                          answered_at=ticket.received_at)
    [survey] = client_for("support").get("/api/v1/surveys/").json()["results"]
    assert survey["comment"] == SHOWN
    [survey] = client_for("manager").get("/api/v1/surveys/").json()["results"]
    assert survey["comment"] == COMMENT
    page = client_for("support").get(f"/service/tickets/{ticket.pk}/").content.decode()
    assert "li.buyer@example.com" not in page and "139 1234 5678" not in page
    assert SHOWN in page  # the revisit panel's answers
    assert Ticket.objects.count() == 1


ACTION_TEXT = "客户反馈：" + COMMENT


@pytest.fixture
def action(users, xiehe):
    import datetime as dt

    from django.utils import timezone

    from pharmacrm.servicedesk import revisit

    return revisit.create_action(users["manager"], {
        "title": "改进配送", "description": ACTION_TEXT, "owner": users["agent"],
        "due_date": timezone.localdate() + dt.timedelta(days=7),
    })  # fmt: skip


def test_an_improvement_actions_description_is_masked_for_its_agent_owner(client_for, action):
    client = client_for("agent")
    page = client.get(f"/service/improvements/{action.pk}/").content.decode()
    assert "客户反馈：" + SHOWN in page and "139 1234 5678" not in page and "li.buyer@example.com" not in page
    answer = client.get(f"/api/v1/improvement-actions/{action.pk}/").json()
    assert answer["description"] == "客户反馈：" + SHOWN
    assert client_for("manager").get(f"/api/v1/improvement-actions/{action.pk}/").json()["description"] == ACTION_TEXT


def test_the_owner_saving_the_masked_description_keeps_the_customers_details(client_for, action):
    client = client_for("agent")
    answer = client.post(f"/service/improvements/{action.pk}/edit/", {
        "title": "改进配送流程", "description": "客户反馈：" + SHOWN + "。已联系仓库", "due_date": action.due_date.isoformat(),
        "version": action.version,
    })  # fmt: skip
    assert answer.status_code == 302, answer.content.decode()[:2000]
    action.refresh_from_db()
    assert action.description == ACTION_TEXT + "。已联系仓库" and action.title == "改进配送流程"
    body = client.get(f"/api/v1/improvement-actions/{action.pk}/").json()
    answer = client.patch(f"/api/v1/improvement-actions/{action.pk}/", {"description": body["description"],
                          "version": body["version"]}, content_type="application/json")  # fmt: skip
    assert answer.status_code == 200, answer.content
    action.refresh_from_db()
    assert action.description == ACTION_TEXT + "。已联系仓库"


TITLE = "回电李女士 139 1234 5678"
OUTCOME = "已回电，改由 li.buyer@example.com 对接配送"


def test_an_improvement_actions_title_and_outcome_are_masked_for_roles_that_see_personal_data_masked(
    client_for, users, action
):
    from pharmacrm.servicedesk import revisit

    action = revisit.update_action(users["manager"], action, {"title": TITLE}, version=action.version)
    action = revisit.transition_action(users["agent"], action, "in_progress", version=action.version)
    action = revisit.transition_action(users["agent"], action, "done", version=action.version, outcome=OUTCOME)
    agent = client_for("agent")
    texts = [agent.get(f"/service/improvements/{action.pk}/").content.decode(),
             agent.get("/service/improvements/?status=done").content.decode(),
             str(agent.get(f"/api/v1/improvement-actions/{action.pk}/").json())]  # fmt: skip
    assert "回电李女士 139****5678" in texts[0] and "改由 l***@example.com 对接" in texts[0]
    answer = agent.get(f"/api/v1/improvement-actions/{action.pk}/").json()
    assert (answer["title"], answer["title_label"]) == ("回电李女士 139****5678",) * 2
    assert answer["outcome"] == "已回电，改由 l***@example.com 对接配送"
    query = {"object_type": "servicedesk.improvementaction", "object_id": action.pk}
    texts += [client_for("auditor").get("/accounts/audit/", query).content.decode(),
              str(client_for("auditor").get("/api/v1/audit/", query).json()["results"])]  # fmt: skip
    for text in texts:
        assert "139 1234 5678" not in text and "li.buyer@example.com" not in text
    manager = client_for("manager").get(f"/api/v1/improvement-actions/{action.pk}/").json()
    assert (manager["title"], manager["outcome"]) == (TITLE, OUTCOME)
    assert TITLE in client_for("manager").get(f"/service/improvements/{action.pk}/").content.decode()


def test_the_owner_saving_the_masked_title_keeps_the_customers_details(client_for, users, action):
    from pharmacrm.servicedesk import revisit

    action = revisit.update_action(users["manager"], action, {"title": TITLE}, version=action.version)
    answer = client_for("agent").post(f"/service/improvements/{action.pk}/edit/", {
        "title": "回电李女士 139****5678 （二次）", "description": "客户反馈：" + SHOWN,
        "due_date": action.due_date.isoformat(), "version": action.version,
    })  # fmt: skip
    assert answer.status_code == 302, answer.content.decode()[:2000]
    action.refresh_from_db()
    assert action.title == TITLE + " （二次）" and action.description == ACTION_TEXT


def test_a_long_outcome_cut_in_the_audit_entry_keeps_its_cut_number_masked(client_for, users, action):
    """The audit entry keeps the outcome's first 500 characters: a number cut there (回电 1391234…) is masked for the
    auditor by the cut rule, and the administrator reads it as kept."""
    from pharmacrm.servicedesk import revisit

    outcome = "药" * (500 - len("回电 1391234")) + "回电 13912345678"
    action = revisit.transition_action(users["agent"], action, "in_progress", version=action.version)
    action = revisit.transition_action(users["agent"], action, "done", version=action.version, outcome=outcome)
    query = {"object_type": "servicedesk.improvementaction", "object_id": action.pk}
    page = client_for("auditor").get("/accounts/audit/", query).content.decode()
    assert "回电 139****…" in page and "1391234" not in page
    assert "回电 1391234…" in client_for("admin").get("/accounts/audit/", query).content.decode()
