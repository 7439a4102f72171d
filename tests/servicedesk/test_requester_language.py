"""The requester's language: a customer who sent a request from /help/ in Traditional Chinese (or English) got the
status-link mail in it but, days later, the revisit survey mail — and the survey page its link opened — in Simplified
Chinese. The ticket now keeps the language the request came in (the page's, the one the agent or an API intake names,
else the person's preferred language, else an API intake's Accept-Language); every mail the desk sends the requester on its own and the pages their links open are
in it, and an agent may change it on the ticket (audited). Real SMTP and IMAP servers (tests/mailservers.py)."""

from __future__ import annotations

import html as html_module
import re
import time

import pytest
from django.test import Client

from pharmacrm.core.models import AuditEntry
from pharmacrm.customers import services as customers
from pharmacrm.customers.models import Person
from pharmacrm.servicedesk import public
from pharmacrm.servicedesk import services as desk
from pharmacrm.servicedesk.choices import Status
from pharmacrm.servicedesk.models import Ticket
from tests import mailservers
from tests.mailservers import imap_server, mail_settings, smtp_server  # noqa: F401

pytestmark = pytest.mark.django_db
CUSTOMER = mailservers.CUSTOMER
SURVEY_HANT = "尊敬的客戶："  # the zh-Hant survey mail's first line
SURVEY_HANS = "尊敬的客户："
STATUS_HANT = "感謝您聯絡我們。"
LINK = re.compile(r"https?://\S+/help/survey/[^\s/]+/")


def _help_request(language: str) -> Ticket:
    """A request sent from /help/ by a browser whose language is `language`, with an e-mail address for answers."""
    web = Client(HTTP_ACCEPT_LANGUAGE=language)
    assert web.get("/help/").status_code == 200
    response = web.post("/help/", {
        "name": "陳小姐", "phone": "", "email": CUSTOMER, "institution": "臺大醫院", "category": "drug_info",
        "product": "", "batch_number": "", "subject": "用法諮詢", "description": "請問這個藥飯前還是飯後吃？",
        "website": "", "stamp": public.form_stamp(at=time.time() - 10), "privacy": "on",
    })  # fmt: skip
    assert response.status_code == 302, response.content.decode()[:2000]
    return Ticket.objects.get(channel="web")


def _resolved(ticket: Ticket, agent) -> Ticket:
    desk.assign(agent, ticket, assignee=agent)
    return desk.transition(agent, Ticket.objects.get(pk=ticket.pk), Status.RESOLVED, resolution_summary="已答覆",
                           root_cause="usage")  # fmt: skip


def _send_survey(client, ticket: Ticket) -> None:
    assert client.post(f"/service/tickets/{ticket.pk}/survey/send/").status_code == 302


def test_a_help_request_in_traditional_chinese_gets_its_survey_mail_and_page_in_traditional_chinese(
    users, client_for, mail_settings, imap_server, worker_inline, django_capture_on_commit_callbacks  # noqa: F811
):
    with django_capture_on_commit_callbacks(execute=True):
        ticket = _help_request("zh-Hant")
    assert ticket.language == "zh-hant"
    [status_mail] = imap_server.messages(CUSTOMER)
    assert status_mail.get_content().startswith(STATUS_HANT)

    agent = client_for("agent")  # the agent's own pages are in Simplified Chinese: not what the customer reads
    with django_capture_on_commit_callbacks(execute=True):
        _resolved(ticket, users["agent"])
        _send_survey(agent, ticket)
    survey_mail = imap_server.messages(CUSTOMER)[-1]
    text = survey_mail.get_content()
    assert text.startswith(SURVEY_HANT) and ticket.number in text, text
    assert SURVEY_HANS not in text

    # the link opens the survey in Traditional Chinese, whatever the browser it is opened in says
    link = LINK.search(text).group(0)
    path = "/help/" + link.split("/help/", 1)[1]
    for accept in ("", "en", "zh-CN"):
        page = Client(HTTP_ACCEPT_LANGUAGE=accept) if accept else Client()
        response = page.get(path)
        html = response.content.decode()
        assert response.status_code == 200 and '<html lang="zh-hant">' in html, accept
        assert "您對我們的服務滿意嗎？" in html and "您对我们的服务满意吗？" not in html
    # a language the reader picked in the page's menu still wins
    chooser = Client()
    chooser.post("/i18n/setlang/", {"language": "en", "next": path})
    assert '<html lang="en">' in chooser.get(path).content.decode()


def test_an_english_request_is_answered_in_english_and_its_status_page_too(
    users, client_for, mail_settings, imap_server, worker_inline, django_capture_on_commit_callbacks  # noqa: F811
):
    with django_capture_on_commit_callbacks(execute=True):
        ticket = _help_request("en")
    assert ticket.language == "en"
    [status_mail] = imap_server.messages(CUSTOMER)
    assert status_mail.get_content().startswith("Thank you for contacting us.")
    status_path = re.search(r"/help/status/[^\s/]+/", status_mail.get_content()).group(0)
    assert '<html lang="en">' in Client(HTTP_ACCEPT_LANGUAGE="zh-CN").get(status_path).content.decode()
    with django_capture_on_commit_callbacks(execute=True):
        _resolved(ticket, users["agent"])
        _send_survey(client_for("agent"), ticket)
    assert imap_server.messages(CUSTOMER)[-1].get_content().startswith("Dear customer,")


def test_an_agent_changes_the_language_on_the_ticket_audited_and_the_survey_follows(
    users, client_for, api_for, mail_settings, imap_server, worker_inline, django_capture_on_commit_callbacks  # noqa: F811
):
    with django_capture_on_commit_callbacks(execute=True):
        ticket = _help_request("zh-Hans")
    assert ticket.language == "zh-hans"
    agent = client_for("agent")
    _resolved(ticket, users["agent"])
    ticket.refresh_from_db()
    page = agent.get(f"/service/tickets/{ticket.pk}/edit/", HTTP_ACCEPT_LANGUAGE="en")
    assert page.status_code == 200 and 'name="language"' in page.content.decode()
    response = agent.post(f"/service/tickets/{ticket.pk}/edit/", {
        "subject": ticket.subject, "description": ticket.description, "category": ticket.category_id,
        "product": "", "batch_number": "", "language": "zh-hant", "reason": "客户来电说明使用繁体中文",
        "version": ticket.version,
    })  # fmt: skip
    assert response.status_code == 302, response.content.decode()[:3000]
    ticket.refresh_from_db()
    assert ticket.language == "zh-hant"
    entry = AuditEntry.objects.filter(object_type="servicedesk.ticket", object_id=str(ticket.pk)).order_by("-seq")[0]
    assert entry.changes["language"] == ["zh-hans", "zh-hant"] and entry.actor_id == users["agent"].pk
    shown = agent.get(f"/service/tickets/{ticket.pk}/", HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert 'id="ticket-language">Traditional Chinese</dd>' in shown
    assert "Simplified Chinese → Traditional Chinese" in shown  # the history, in the reader's language
    with django_capture_on_commit_callbacks(execute=True):
        _send_survey(agent, ticket)
    assert imap_server.messages(CUSTOMER)[-1].get_content().startswith(SURVEY_HANT)
    # through the API as well; a language the product does not speak is refused, naming the field
    ticket.refresh_from_db()
    api = api_for("agent")
    refused = api.patch(f"/api/v1/tickets/{ticket.pk}/details/", {"language": "fr", "version": ticket.version},
                        format="json")  # fmt: skip
    assert refused.status_code == 400 and "language" in refused.json()
    changed = api.patch(f"/api/v1/tickets/{ticket.pk}/details/", {"language": "en", "version": ticket.version},
                        format="json")  # fmt: skip
    assert changed.status_code == 200 and changed.json()["language"] == "en"


def test_an_api_intake_takes_its_language_field_then_the_person_s_preferred_language_then_its_accept_language(
    users, api_for, xiehe
):
    """The Accept-Language of an API call is the calling system's (a hotline's), not the requester's: a person whose
    record says English, taken in by a hotline whose calls say zh-CN, got their mails in Simplified Chinese."""
    body = {"subject": "Dosage question", "channel": "email", "category": "drug_info", "caller_name": "Ms Chen",
            "reply_email": CUSTOMER}  # fmt: skip
    # an unidentified caller: the request's Accept-Language, else zh-hans (also for one the product does not speak)
    made = api_for("agent", lang="zh-TW").post("/api/v1/tickets/", body, format="json")
    assert made.status_code == 201 and made.json()["language"] == "zh-hant"
    made = api_for("agent", lang="fr").post("/api/v1/tickets/", body, format="json")
    assert made.status_code == 201 and made.json()["language"] == "zh-hans"
    person = Person.objects.get(name="张伟")
    customers.update_person(users["admin"], person, {"preferred_language": "en"}, person.version)
    theirs = {**body, "caller_name": "", "person": person.pk}
    for lang in ("", "zh-CN", "zh-TW"):  # the person's record before the hotline's language
        made = api_for("agent", lang=lang).post("/api/v1/tickets/", theirs, format="json")
        assert made.status_code == 201 and made.json()["language"] == "en", lang
        assert Ticket.objects.get(pk=made.json()["id"]).language == "en"
    # the explicit field before both
    named = api_for("agent", lang="zh-TW").post("/api/v1/tickets/", {**theirs, "language": "zh-hans"}, format="json")
    assert named.status_code == 201 and named.json()["language"] == "zh-hans"
    named = api_for("agent", lang="en").post("/api/v1/tickets/", {**body, "language": "zh-hans"}, format="json")
    assert named.status_code == 201 and named.json()["language"] == "zh-hans"
    # a person whose record names no language: the Accept-Language again
    Person.objects.filter(pk=person.pk).update(preferred_language="")
    made = api_for("agent", lang="zh-TW").post("/api/v1/tickets/", theirs, format="json")
    assert made.status_code == 201 and made.json()["language"] == "zh-hant"


def test_the_api_schema_describes_the_language_order(api_for):
    schema = api_for("agent").get("/api/schema/", HTTP_ACCEPT="application/json")
    assert schema.status_code == 200
    text = schema.json()["components"]["schemas"]["Ticket"]["properties"]["language"]["description"]
    assert text.index("preferred language") < text.index("Accept-Language") < text.index("zh-hans")


def test_a_phone_ticket_without_a_preference_is_in_simplified_chinese(users, caller_ticket):
    assert caller_ticket.language == "zh-hans"


def test_tickets_taken_in_before_are_in_simplified_chinese_unless_their_person_prefers_another(users, xiehe):
    """The migration's data step: the tickets of before have the default (zh-hans), except a person's whose record
    names a language — the desk already wrote to them in it, and goes on doing so."""
    import importlib

    from django.apps import apps

    person = Person.objects.get(name="张伟")
    person = customers.update_person(users["admin"], person, {"preferred_language": "zh-hant"}, person.version)
    theirs = desk.create_ticket(users["agent"], {"subject": "用法", "channel": "phone", "category": "drug_info",
                                                 "person": person})  # fmt: skip
    stranger = desk.create_ticket(users["agent"], {"subject": "用法", "channel": "phone", "category": "drug_info",
                                                   "caller_name": "李女士"})  # fmt: skip
    Ticket.objects.update(language="zh-hans")  # as the new column is filled in for the rows already there
    importlib.import_module("pharmacrm.servicedesk.migrations.0028_ticket_language").from_the_people(apps, None)
    assert Ticket.objects.get(pk=theirs.pk).language == "zh-hant"
    assert Ticket.objects.get(pk=stranger.pk).language == "zh-hans"


def _intake_page(agent, query: str = "") -> tuple[str, str]:
    html = agent.get(f"/service/new/{query}", HTTP_ACCEPT_LANGUAGE="en").content.decode()
    token = re.search(r'name="form_token" value="([^"]+)"', html).group(1)
    return html, token


def _selected_language(html: str) -> str:
    select = re.search(r'<select name="language"[^>]*>(.*?)</select>', html, re.S).group(1)
    return re.search(r'<option value="([^"]+)" selected>', select).group(1)


def _take_call(agent, token: str, **data) -> Ticket:
    response = agent.post("/service/new/", {
        "form_token": token, "channel": "phone", "category": "drug_info", "subject": f"电话咨询用法 {token[-6:]}",
        "description": "", **data,
    }, HTTP_ACCEPT_LANGUAGE="en")  # fmt: skip
    assert response.status_code == 302, response.content.decode()[:3000]
    return Ticket.objects.get(pk=int(re.search(r"/service/tickets/(\d+)/", response["Location"]).group(1)))


def test_the_agent_intake_form_has_a_language_field_preset_from_the_person_else_simplified_chinese(
    users, client_for, xiehe
):
    """An agent recording a call had no way to say the caller's language: a caller who spoke English got the survey
    mail in Simplified Chinese. The field is a labelled select with its help text read with it."""
    agent = client_for("agent")
    html, _token = _intake_page(agent)
    assert '<label for="id_language">Customer&#x27;s language</label>' in html
    select = re.search(r'<select name="language"[^>]*>', html).group(0)
    assert 'id="id_language"' in select and 'aria-describedby="id_language_helptext"' in select
    assert _selected_language(html) == "zh-hans"
    for code, label in (("zh-hans", "Simplified Chinese"), ("en", "English"), ("zh-hant", "Traditional Chinese")):
        assert re.search(rf'<option value="{code}"( selected)?>{label}</option>', html), code
    assert 'id="id_language_helptext">Preset from the chosen person&#x27;s preferred language' in html
    assert re.search(r'<input type="hidden" name="language_preset" value="zh-hans"', html)
    # what app.js reads out when choosing a person changes the language
    assert re.search(r'<p class="visually-hidden" id="id_language_said" aria-live="polite" '
                     r'data-said="Customer&#x27;s language set to \{language\}\.">', html)

    person = Person.objects.get(name="张伟")
    customers.update_person(users["admin"], person, {"preferred_language": "en"}, person.version)
    html, _token = _intake_page(agent, f"?institution={xiehe.pk}&person={person.pk}")
    assert _selected_language(html) == "en"
    assert re.search(r'<input type="hidden" name="language_preset" value="en"', html)
    # the person select tells the page each person's language, and where it goes (app.js follows the choice)
    people = re.search(r'<select name="person"([^>]*)>(.*?)</select>', html, re.S)
    assert 'data-language-for="id_language"' in people.group(1)
    chosen = re.search(rf'<option value="{person.pk}"[^>]*>', people.group(2)).group(0)
    assert 'data-language="en"' in chosen and "selected" in chosen
    options = agent.get("/service/new/", {"_options": "person", "institution": xiehe.pk}).content.decode()
    assert f'<option value="{person.pk}" data-language="en">' in options


def test_the_language_chosen_on_the_intake_form_is_the_ticket_s_and_its_survey_mail_s(
    users, client_for, mail_settings, imap_server, worker_inline, django_capture_on_commit_callbacks  # noqa: F811
):
    agent = client_for("agent")
    _html, token = _intake_page(agent)
    ticket = _take_call(agent, token, caller_name="陳小姐", reply_email=CUSTOMER, language="zh-hant",
                        language_preset="zh-hans")  # fmt: skip
    assert ticket.language == "zh-hant"
    shown = agent.get(f"/service/tickets/{ticket.pk}/", HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert 'id="ticket-language">Traditional Chinese</dd>' in shown
    with django_capture_on_commit_callbacks(execute=True):
        _resolved(ticket, users["agent"])
        _send_survey(agent, ticket)
    text = imap_server.messages(CUSTOMER)[-1].get_content()
    assert text.startswith(SURVEY_HANT) and SURVEY_HANS not in text, text


def test_a_language_left_as_preset_follows_the_person_chosen_and_one_the_agent_chose_stays(users, client_for, xiehe):
    agent = client_for("agent")
    person = Person.objects.get(name="张伟")
    customers.update_person(users["admin"], person, {"preferred_language": "en"}, person.version)
    # the person chosen as the page preset it (app.js moves the preset along with the person): their language
    _html, token = _intake_page(agent)
    ticket = _take_call(agent, token, institution=xiehe.pk, person=person.pk, language="en",
                        language_preset="en")  # fmt: skip
    assert ticket.language == "en"
    # the agent chose Simplified Chinese over the person's English (the page had preset English)
    _html, token = _intake_page(agent, f"?person={person.pk}")
    ticket = _take_call(agent, token, institution=xiehe.pk, person=person.pk, language="zh-hans",
                        language_preset="en")  # fmt: skip
    assert ticket.language == "zh-hans"
    # an unidentified caller with the preset left: Simplified Chinese
    _html, token = _intake_page(agent)
    ticket = _take_call(agent, token, caller_name="王先生", language="zh-hans", language_preset="zh-hans")
    assert ticket.language == "zh-hans"


def _asked_again(agent, token: str, **data):
    """The intake form posted without JavaScript; it comes back (400) asking about the customer's language."""
    response = agent.post("/service/new/", {
        "form_token": token, "channel": "phone", "category": "drug_info", "subject": "电话咨询语言",
        "description": "", **data,
    }, HTTP_ACCEPT_LANGUAGE="en")  # fmt: skip
    assert response.status_code == 400, response.status_code
    assert not Ticket.objects.filter(subject="电话咨询语言").exists()
    html = response.content.decode()
    error = re.search(r'id="id_language_error"[^>]*>(.*?)</(?:div|ul|span)>', html, re.S).group(1)
    return html, html_module.unescape(" ".join(re.sub(r"<[^>]+>", " ", error).split()))


def test_without_javascript_a_language_left_at_another_persons_preset_is_asked_again_not_taken_silently(
    users, client_for, xiehe
):
    """Without JavaScript the select kept the page's preset after another person was chosen, and the ticket took the
    chosen person's language silently: the agent sent "Simplified Chinese" and the acknowledgement went out in
    English. The form comes back with the select at the chosen person's language, saying so; sent again as shown, the
    ticket is in it — and a language the agent changes it to is the ticket's."""
    agent = client_for("agent")
    zhang = Person.objects.get(name="张伟")
    customers.update_person(users["admin"], zhang, {"preferred_language": "en"}, zhang.version)
    html, token = _intake_page(agent)  # no person yet: preset Simplified Chinese
    html, error = _asked_again(agent, token, institution=xiehe.pk, person=zhang.pk, language="zh-hans",
                               language_preset="zh-hans")  # fmt: skip
    assert error == ("This was preset for another person: it is now the chosen person's preferred language, English. "
                     "Check it and create the ticket again.")  # fmt: skip
    assert _selected_language(html) == "en"
    assert re.search(r'<input type="hidden" name="language_preset" value="en"', html)
    assert re.search(rf'<option value="{zhang.pk}"[^>]*selected', html)  # the person chosen stays chosen
    ticket = _take_call(agent, token, institution=xiehe.pk, person=zhang.pk, language="en", language_preset="en")
    assert ticket.language == "en"

    # asked, the agent chooses another language: that one is the ticket's
    _html, token = _intake_page(agent)
    _asked_again(agent, token, institution=xiehe.pk, person=zhang.pk, language="zh-hans", language_preset="zh-hans")
    ticket = _take_call(agent, token, institution=xiehe.pk, person=zhang.pk, language="zh-hant",
                        language_preset="en")  # fmt: skip
    assert ticket.language == "zh-hant"


def test_without_javascript_a_preset_for_a_person_no_longer_chosen_is_asked_again(users, client_for, xiehe):
    """The page opened for a person who prefers English (preset English); the agent chose a person with no preferred
    language, or none: the ticket would have been in Simplified Chinese under a select showing English."""
    agent = client_for("agent")
    zhang = Person.objects.get(name="张伟")
    customers.update_person(users["admin"], zhang, {"preferred_language": "en"}, zhang.version)
    li = customers.create_person(users["admin"], {"name": "李娜", "institution": xiehe, "title": "药剂师"})
    assert li.preferred_language == ""
    for chosen in ({"caller_name": "王先生"}, {"person": li.pk}):
        html, token = _intake_page(agent, f"?institution={xiehe.pk}&person={zhang.pk}")
        assert _selected_language(html) == "en"
        html, error = _asked_again(agent, token, institution=xiehe.pk, language="en", language_preset="en", **chosen)
        assert error == "This was preset for another person: it is now the default, Simplified Chinese. Check it and " \
                        "create the ticket again.", chosen
        assert _selected_language(html) == "zh-hans"
        ticket = _take_call(agent, token, institution=xiehe.pk, language="zh-hans", language_preset="zh-hans",
                            **chosen)  # fmt: skip
        assert ticket.language == "zh-hans"
    # the same person kept, or the agent's own choice: no question
    _html, token = _intake_page(agent, f"?institution={xiehe.pk}&person={zhang.pk}")
    assert _take_call(agent, token, institution=xiehe.pk, person=zhang.pk, language="en",
                      language_preset="en").language == "en"  # fmt: skip
    _html, token = _intake_page(agent, f"?institution={xiehe.pk}&person={zhang.pk}")
    assert _take_call(agent, token, caller_name="李女士", language="zh-hant",
                      language_preset="en").language == "zh-hant"  # fmt: skip


def test_a_language_the_product_does_not_speak_is_refused_under_the_field(users, client_for):
    agent = client_for("agent")
    _html, token = _intake_page(agent)
    response = agent.post("/service/new/", {
        "form_token": token, "channel": "phone", "category": "drug_info", "subject": "电话咨询用法",
        "caller_name": "王先生", "language": "fr", "language_preset": "zh-hans",
    }, HTTP_ACCEPT_LANGUAGE="en")  # fmt: skip
    assert response.status_code == 400
    assert "language" in response.context["form"].errors
    assert 'id="id_language_error"' in response.content.decode()
    assert not Ticket.objects.filter(subject="电话咨询用法").exists()
