"""Review round 19 (interactions, revisits, webhooks): what users ran into, each pinned by a test."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from django.test import Client
from django.utils import timezone, translation

from pharmacrm.engagement import services
from pharmacrm.engagement.models import Interaction
from pharmacrm.safety.models import Flag


def _edit_form(interaction, **changes) -> dict:
    data = {
        "institution": interaction.institution_id or "", "person": interaction.person_id or "",
        "channel": interaction.channel,
        "received_at": timezone.localtime(interaction.received_at).strftime("%Y-%m-%dT%H:%M"),
        "subject": interaction.subject, "notes": interaction.notes, "version": interaction.version,
    }  # fmt: skip
    data.update(changes)
    return data


# --- interactions ----------------------------------------------------------------------------------


def test_the_author_of_a_flagged_visit_can_correct_its_notes_on_the_page(client_for, users, xiehe):
    """The page shows the time to the minute; sending it back unchanged is no attempt to move day 0 (a visit
    recorded "now", or by the app, has seconds)."""
    visit = services.record_interaction(users["rep"], {
        "institution": xiehe, "channel": "visit", "subject": "科室拜访", "notes": "张主任说有患者用药后出现皮疹",
        "received_at": timezone.now().replace(second=37, microsecond=123456) - dt.timedelta(hours=1),
    })  # fmt: skip
    assert Flag.objects.filter(interaction=visit).exists()
    client = client_for("rep")

    response = client.post(f"/interactions/{visit.pk}/", _edit_form(visit, notes="张主任说有患者用药后出现皮疹，已停药"),
                           HTTP_ACCEPT_LANGUAGE="en")  # fmt: skip

    assert response.status_code == 302, response.content.decode()[:3000]
    fresh = Interaction.objects.get(pk=visit.pk)
    assert fresh.notes.endswith("已停药")
    assert fresh.received_at == visit.received_at  # day 0 kept to the microsecond


def test_moving_a_flagged_visit_to_another_minute_is_still_refused(client_for, users, xiehe):
    visit = services.record_interaction(users["rep"], {
        "institution": xiehe, "channel": "visit", "subject": "科室拜访", "notes": "患者用药后出现皮疹",
        "received_at": timezone.now() - dt.timedelta(hours=3),
    })  # fmt: skip
    moved = timezone.localtime(visit.received_at - dt.timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M")

    response = client_for("rep").post(f"/interactions/{visit.pk}/", _edit_form(visit, received_at=moved),
                                      HTTP_ACCEPT_LANGUAGE="en")  # fmt: skip

    assert response.status_code == 400
    assert "day 0" in response.content.decode()
    assert Interaction.objects.get(pk=visit.pk).received_at == visit.received_at


def test_an_edit_cannot_take_the_customer_off_an_interaction(client_for, users, xiehe):
    """Emptying both customer fields would take the visit off the customer's page (and out of every scoped
    colleague's sight): refused like a new interaction without a customer."""
    visit = services.record_interaction(users["rep"], {"institution": xiehe, "channel": "visit", "subject": "科室拜访"})

    response = client_for("rep").post(f"/interactions/{visit.pk}/", _edit_form(visit, institution="", person=""),
                                      HTTP_ACCEPT_LANGUAGE="en")  # fmt: skip

    assert response.status_code == 400
    assert "Name the institution or the person." in response.content.decode()
    fresh = Interaction.objects.get(pk=visit.pk)
    assert fresh.institution_id == xiehe.pk and fresh.version == visit.version


def test_the_api_cannot_take_the_customer_off_an_interaction_either(users, xiehe):
    from django.core.exceptions import ValidationError

    visit = services.record_interaction(users["rep"], {"institution": xiehe, "channel": "visit", "subject": "科室拜访"})
    with pytest.raises(ValidationError) as e:
        services.update_interaction(users["rep"], visit, {"institution": None, "person": None})
    assert "institution" in e.value.message_dict
    person = xiehe.people.get(name="张伟")
    moved = services.update_interaction(users["rep"], visit, {"institution": None, "person": person})
    assert moved.person == person and moved.institution_id == person.institution_id  # a person is enough


def test_all_interactions_of_a_person_lists_that_persons_interactions_only(client_for, users, xiehe):
    """The "All interactions" link of a person's page (/interactions/?person=…) used to list everybody's."""
    zhang = xiehe.people.get(name="张伟")
    for n in range(11):
        services.record_interaction(users["agent"], {"person": zhang, "channel": "phone", "subject": f"张主任回访{n}"})
    services.record_interaction(users["agent"], {"institution": xiehe, "channel": "visit", "subject": "药剂科拜访"})
    client = client_for("agent")
    block = client.get(f"/interactions/?embed=1&person={zhang.pk}", HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert f'href="/interactions/?person={zhang.pk}"' in block  # more than ten: the link to all of them

    page = client.get(f"/interactions/?person={zhang.pk}", HTTP_ACCEPT_LANGUAGE="en").content.decode()

    assert "药剂科拜访" not in page
    assert "11 interactions" in page
    assert "张伟" in page.split('class="filters card"', 1)[1].split("</form>", 1)[0]  # the filter says whose
    assert "Clear filters" in page


def test_a_rep_cannot_list_the_interactions_of_a_person_outside_the_territory(client_for, users, ruijin, xiehe):
    from pharmacrm.customers import services as customers

    doctor = customers.create_person(users["admin"], {"name": "李华", "institution": ruijin, "title": "主任医师"})
    services.record_interaction(users["agent"], {"person": doctor, "channel": "phone", "subject": "上海回访"})

    page = client_for("rep").get(f"/interactions/?person={doctor.pk}", HTTP_ACCEPT_LANGUAGE="en").content.decode()

    assert "上海回访" not in page and "李华" not in page


# --- revisits --------------------------------------------------------------------------------------


@pytest.fixture
def resolved_ticket(users, xiehe):
    from pharmacrm.servicedesk import services as desk
    from pharmacrm.servicedesk.choices import Status

    def make(category="drug_info"):
        ticket = desk.create_ticket(users["agent"], {
            "subject": "咨询用法", "channel": "phone", "category": category, "institution": xiehe,
            "assignee": users["agent"],
        })  # fmt: skip
        desk.transition(users["agent"], ticket, Status.RESOLVED, resolution_summary="已答复", root_cause="usage")
        return ticket

    return make


def _survey_path(users, ticket) -> str:
    from pharmacrm.servicedesk import revisit

    _survey, link = revisit.send_survey(users["agent"], ticket)
    return "/help/survey/" + link.rstrip("/").rsplit("/", 1)[-1] + "/"


@pytest.mark.parametrize("language", ["en", "zh-hant"])
def test_a_poor_answer_in_another_language_opens_an_action_in_the_staffs_language(users, resolved_ticket, language):
    """The customer read the survey in English (or Traditional Chinese): the improvement action the managers
    work on, and its bell notification, were titled in the customer's language."""
    from pharmacrm.notify.models import Notification
    from pharmacrm.servicedesk.models import ImprovementAction

    ticket = resolved_ticket()
    path = _survey_path(users, ticket)

    response = Client(HTTP_ACCEPT_LANGUAGE=language).post(path, {"score": "1", "solved": "no", "comment": "没解决"})

    assert response.status_code == 200
    action = ImprovementAction.objects.get(ticket=ticket)
    with translation.override("zh-hans"):
        expected = translation.gettext("Poor revisit of %(number)s") % {"number": ticket.number}
    assert action.title == expected and "Poor revisit" not in action.title
    note = Notification.objects.get(kind="improvement.assigned")
    with translation.override("zh-hans"):
        assert expected in note.shown_title


def test_a_poor_answer_that_reopens_writes_the_note_in_the_staffs_language(users, resolved_ticket, settings):
    from pharmacrm.servicedesk.choices import LowScore, Status
    from pharmacrm.servicedesk.models import TicketCategory, TicketMessage

    TicketCategory.objects.filter(code="drug_info").update(low_score_action=LowScore.REOPEN)
    ticket = resolved_ticket()
    path = _survey_path(users, ticket)

    Client(HTTP_ACCEPT_LANGUAGE="en").post(path, {"score": "2", "solved": "no"})

    ticket.refresh_from_db()
    assert ticket.status == Status.IN_PROGRESS
    with translation.override(settings.LANGUAGE_CODE):
        expected = translation.gettext("Reopened after a poor revisit (score %(score)s, solved: %(solved)s).") % {
            "score": 2, "solved": translation.gettext("no")}  # fmt: skip
    texts = [m.body for m in TicketMessage.objects.filter(ticket=ticket)]
    from pharmacrm.servicedesk.models import TicketEvent

    texts += [str(e.data) for e in TicketEvent.objects.filter(ticket=ticket)]
    assert any(expected in t for t in texts), texts


def test_the_survey_asks_the_net_promoter_question_and_keeps_the_answer(users, resolved_ticket):
    """The key-account evaluation counts NPS "from the revisit survey's 0–10 question", but no survey asked it:
    every customer's NPS stayed empty."""
    from pharmacrm.servicedesk.models import Survey

    ticket = resolved_ticket()
    ticket.language = "en"  # the survey opens in the requester's language (kept on the ticket)
    ticket.save(update_fields=["language"])
    path = _survey_path(users, ticket)
    web = Client(HTTP_ACCEPT_LANGUAGE="en")
    page = web.get(path).content.decode()
    assert "How likely are you to recommend us" in page and 'name="recommend"' in page

    bad = web.post(path, {"score": "5", "solved": "yes", "recommend": "11"})
    assert bad.status_code == 400 and Survey.objects.get(ticket=ticket).answered_at is None
    response = web.post(path, {"score": "5", "solved": "yes", "recommend": "9"})

    assert response.status_code == 200
    assert Survey.objects.get(ticket=ticket).recommend == 9


def test_the_net_promoter_question_is_optional(users, resolved_ticket):
    from pharmacrm.servicedesk.models import Survey

    ticket = resolved_ticket()
    response = Client(HTTP_ACCEPT_LANGUAGE="en").post(_survey_path(users, ticket), {"score": "4", "solved": "yes"})

    assert response.status_code == 200
    survey = Survey.objects.get(ticket=ticket)
    assert survey.score == 4 and survey.recommend is None


def test_a_phone_revisit_records_the_net_promoter_answer_on_the_page_and_in_the_api(
    client_for, api_for, users, resolved_ticket
):
    from pharmacrm.servicedesk.models import Survey

    ticket = resolved_ticket()
    client = client_for("agent")
    page = client.get(f"/service/tickets/{ticket.pk}/", HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert "Would recommend us (0–10)" in page

    response = client.post(f"/service/tickets/{ticket.pk}/survey/phone/",
                           {"score": "3", "solved": "yes", "recommend": "6", "comment": "还行"})  # fmt: skip

    assert response.status_code == 302
    assert Survey.objects.get(ticket=ticket).recommend == 6
    page = client.get(f"/service/tickets/{ticket.pk}/", HTTP_ACCEPT_LANGUAGE="en").content.decode()
    row = page.split('id="survey-table"', 1)[1].split("</table>", 1)[0]
    assert ">6</td>" in row

    other = resolved_ticket()
    answer = api_for("agent").post("/api/v1/surveys/", {"ticket": other.pk, "score": 5, "solved": True,
                                                        "recommend": 10}, format="json")  # fmt: skip
    assert answer.status_code == 201, answer.content
    assert answer.json()["recommend"] == 10


def test_a_phone_revisit_closes_the_link_sent_before(users, resolved_ticket):
    """The agent sent a link, then called the customer and recorded a poor phone revisit; the customer then
    answered the old link as well: two answers, two improvement actions, the owner told twice."""
    from pharmacrm.servicedesk import revisit
    from pharmacrm.servicedesk.models import ImprovementAction

    ticket = resolved_ticket()
    path = _survey_path(users, ticket)
    revisit.record_phone_revisit(users["agent"], ticket, 2, False, "电话回访：还是不满意")

    response = Client(HTTP_ACCEPT_LANGUAGE="en").post(path, {"score": "1", "solved": "no"})

    assert response.status_code == 410
    assert ImprovementAction.objects.filter(ticket=ticket).count() == 1


# --- the product catalogue -------------------------------------------------------------------------


def test_an_approval_number_typed_in_full_width_is_stored_in_ascii_and_found(client_for, users):
    """A Chinese input method in full-width mode types “Ｈ２０２４９８７１”: the product was saved with those
    characters, so the search for H2024 missed it, the same number in ASCII made a second product, and order
    imports (which match by approval number) never found it."""
    from pharmacrm.servicedesk.models import Product

    client = client_for("expert")
    form = {"brand_name": "安心宁", "generic_name": "盐酸氨氯地平片", "approval_number": "国药准字Ｈ２０２４９８７１",
            "dosage_form": "片剂", "strength": "5mg×28片", "active": "on"}  # fmt: skip

    response = client.post("/service/knowledge/products/new/", form, HTTP_ACCEPT_LANGUAGE="en")

    assert response.status_code == 302, response.content.decode()[:2000]
    assert Product.objects.get().approval_number == "国药准字H20249871"
    listing = client.get("/service/knowledge/products/?q=H2024", HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert "安心宁" in listing
    listing = client.get("/service/knowledge/products/?q=Ｈ２０２４", HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert "安心宁" in listing
    again = client.post("/service/knowledge/products/new/", {**form, "approval_number": "国药准字H20249871"},
                        HTTP_ACCEPT_LANGUAGE="en")  # fmt: skip
    assert again.status_code == 400 and Product.objects.count() == 1


def test_an_approval_number_with_other_unicode_digits_is_refused(users):
    from django.core.exceptions import ValidationError

    from pharmacrm.servicedesk import knowledge

    with pytest.raises(ValidationError) as e:  # Arabic-Indic digits pass \\d, not the format
        knowledge.create_product(users["expert"], {"brand_name": "x", "generic_name": "y",
                                                   "approval_number": "国药准字H٢٠٢٤٩٨٧١"})  # fmt: skip
    assert "approval_number" in e.value.message_dict


def test_after_a_conflict_the_kept_input_saves_on_the_second_try(client_for, users, xiehe):
    """Two people changed the same visit: the second was told so, their text kept — but the form still carried
    the version they had loaded, so "save again" was refused again, every time, until they reloaded and lost
    what they had written."""
    visit = services.record_interaction(users["rep"], {"institution": xiehe, "channel": "visit", "subject": "科室拜访"})
    services.update_interaction(users["manager"], visit, {"subject": "经理改的主题"}, version=1)  # someone else saves
    client = client_for("rep")
    mine = _edit_form(visit, notes="我写的很长的拜访记录", version=1)

    first = client.post(f"/interactions/{visit.pk}/", mine, HTTP_ACCEPT_LANGUAGE="en")

    assert first.status_code == 409
    page = first.content.decode()
    assert "我写的很长的拜访记录" in page  # the input kept
    assert 'name="version" value="2"' in page  # the version now current, so that saving again works
    mine["version"] = 2
    second = client.post(f"/interactions/{visit.pk}/", mine, HTTP_ACCEPT_LANGUAGE="en")
    assert second.status_code == 302
    assert Interaction.objects.get(pk=visit.pk).notes == "我写的很长的拜访记录"


def test_after_a_conflict_an_improvement_actions_kept_edit_saves_on_the_second_try(client_for, users, resolved_ticket):
    from pharmacrm.servicedesk import revisit
    from pharmacrm.servicedesk.models import ImprovementAction

    ticket = resolved_ticket()
    action = revisit.create_action(users["agent"], {"title": "培训", "ticket": ticket,
                                                    "due_date": timezone.localdate() + dt.timedelta(days=5)})  # fmt: skip
    revisit.update_action(users["manager"], action, {"title": "培训（改）"}, version=1)  # someone else saves
    client = client_for("agent")
    due = (timezone.localdate() + dt.timedelta(days=7)).isoformat()
    mine = {"title": "培训", "description": "我写的改进说明", "due_date": due, "version": 1}

    first = client.post(f"/service/improvements/{action.pk}/edit/", mine, HTTP_ACCEPT_LANGUAGE="en")

    assert first.status_code == 409 and "我写的改进说明" in first.content.decode()
    edit_form = first.content.decode().split('id="edit"', 1)[1].split("</form>", 1)[0]
    version = re.search(r'name="version" value="(\d+)"', edit_form).group(1)
    assert version == "2"  # what the form sends back: the version now current
    second = client.post(f"/service/improvements/{action.pk}/edit/", {**mine, "version": version})
    assert second.status_code == 302
    assert ImprovementAction.objects.get(pk=action.pk).description == "我写的改进说明"


def test_the_institution_filter_of_the_list_can_find_any_institution(client_for, users, xiehe, ruijin, monkeypatch):
    """The filter's select offers only the first 300 institutions by name (of thousands): without the search
    box the forms have, a manager could not filter by most hospitals."""
    from pharmacrm.customers import forms as customer_forms

    monkeypatch.setattr(customer_forms, "PICKER_LIMIT", 1)  # as if there were more than the select shows
    services.record_interaction(users["agent"], {"institution": ruijin, "channel": "visit", "subject": "上海拜访"})
    client = client_for("manager")

    page = client.get("/interactions/", HTTP_ACCEPT_LANGUAGE="en").content.decode()

    bar = page.split('class="filters card"', 1)[1].split("</form>", 1)[0]
    search = re.search(r'<input type="search" class="picker-search"[^>]*>', bar)
    assert search and 'hx-get="/customers/search/"' in search.group(0) and 'hx-target="#id_institution"' in search.group(0)
    options = client.get("/customers/search/", {"q": "瑞金", "as": "options"}).content.decode()
    assert f'value="{ruijin.pk}"' in options
    listing = client.get(f"/interactions/?institution={ruijin.pk}", HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert "上海拜访" in listing and "1 interaction," in listing
