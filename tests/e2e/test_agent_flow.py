"""The agent's whole flow in a real Chromium, in Chinese: a call taken in at the intake form, a reply built
from an answer template, an internal note, resolved with the root cause, the customer informed, a revisit
survey whose link the customer answers in their own browser, and the ticket closed."""

import re

import pytest
from django.urls import reverse

from pharmacrm.servicedesk.choices import EventKind, MessageKind, Status
from pharmacrm.servicedesk.models import AnswerTemplate, SlaClock, Survey, Ticket, TicketEvent, TicketMessage

from .conftest import close_quietly, open_context, shot, sign_in

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def storage_template(users):
    return AnswerTemplate.objects.create(
        name="储存条件答复", language="zh-hans",
        body="{customer}您好，关于工单 {ticket}：本品请于 2–8℃ 冷藏保存，避免冷冻。客服 {agent}",
    )  # fmt: skip


def test_an_agent_takes_a_call_answers_resolves_and_closes_it_after_the_revisit(
    page, browser, live_server, users, storage_template
):
    sign_in(page, "agent")

    # 受理: an unidentified caller rings the hotline
    page.goto(reverse("servicedesk:ticket-create"))
    page.fill("#id_caller_name", "王女士")
    page.fill("#id_caller_phone", "13812345678")
    page.select_option("#id_category", "drug_info")
    page.fill("#id_subject", "咨询药品储存条件")
    page.fill("#id_description", "客户询问开封后的储存温度。")
    page.select_option("#id_assignee", str(users["agent"].pk))
    with page.expect_navigation():
        page.locator("form button[type=submit].btn-primary").last.click()
    assert re.search(r"/service/tickets/\d+/$", page.url), page.url
    ticket = Ticket.objects.get(subject="咨询药品储存条件")
    assert ticket.number in page.locator("h1").inner_text()
    assert ticket.status == Status.ASSIGNED and ticket.channel == "phone"

    # 处理: reply with the template (its placeholders filled in), then an internal note
    page.select_option("#id_template", str(storage_template.pk))
    page.wait_for_function("document.querySelector('#message-body').value.includes('2–8℃')")
    body = page.input_value("#message-body")
    assert ticket.number in body and "{customer}" not in body
    page.check("#kind-reply")
    with page.expect_navigation():
        page.locator("#composer button[type=submit]").click()
    page.locator("#message-body").wait_for()
    reply = TicketMessage.objects.get(ticket=ticket, kind=MessageKind.REPLY)
    assert reply.template == storage_template and "冷藏" in page.locator("#conversation").inner_text()
    first = SlaClock.objects.get(ticket=ticket, kind="first_response")
    assert first.fulfilled_at is not None  # the reply met the first-response target

    page.check("#kind-note")
    page.fill("#message-body", "已核对说明书第 9 条。")
    with page.expect_navigation():
        page.locator("#composer button[type=submit]").click()
    note = TicketMessage.objects.get(ticket=ticket, kind=MessageKind.NOTE)
    assert page.locator(f"#message-{note.pk}").get_attribute("data-kind") == "note"

    # 反馈: resolve with a summary and the root cause, then record that the customer was told
    page.locator("details#resolve > summary").click()
    page.fill("#id_resolve-resolution_summary", "已告知客户 2–8℃ 冷藏保存。")
    page.select_option("#id_resolve-root_cause", "information")
    with page.expect_navigation():
        page.locator("details#resolve button[type=submit]").click()
    ticket.refresh_from_db()
    assert ticket.status == Status.RESOLVED and ticket.root_cause == "information"

    page.select_option("#informed-channel", "phone")
    with page.expect_navigation():
        page.locator("button[name=go][value=informed]").click()
    ticket.refresh_from_db()
    assert ticket.status == Status.INFORMED

    # 回访: no e-mail address, so the agent gets the survey link to send by SMS
    with page.expect_navigation():
        page.click("#send-survey")
    link = page.input_value("#survey-link")
    assert link.startswith("http") and "/help/survey/" in link

    customer = open_context(browser, live_server)
    survey_page = customer.new_page()
    survey_page.goto(link.replace("http://127.0.0.1:8000", live_server.url))
    assert ticket.number in survey_page.content()
    survey_page.locator("input[name=score][value='5']").check()
    survey_page.locator("input[name=solved][value=yes]").check()
    survey_page.fill("textarea[name=comment]", "回复很及时，谢谢！")
    with survey_page.expect_navigation():
        survey_page.locator("#survey-form button[type=submit]").click()
    assert "谢谢" in survey_page.locator("main").inner_text() or "感谢" in survey_page.locator("main").inner_text()
    # the link works once only
    survey_page.goto(link.replace("http://127.0.0.1:8000", live_server.url))
    assert survey_page.locator("#survey-form").count() == 0
    close_quietly(customer)

    survey = Survey.objects.get(ticket=ticket)
    assert (survey.score, survey.solved, survey.outcome) == (5, True, "")

    # closed once the revisit is done
    page.reload()
    assert "回复很及时" in page.locator("#revisit").inner_text()
    with page.expect_navigation():
        page.locator("button[name=go][value=closed]").click()
    ticket.refresh_from_db()
    assert ticket.status == Status.CLOSED
    kinds = list(TicketEvent.objects.filter(ticket=ticket).values_list("kind", flat=True))
    for kind in (EventKind.CREATED, EventKind.REPLY, EventKind.NOTE, EventKind.SURVEY):
        assert kind in kinds
    assert page.locator(".ticket-status").first.inner_text() == "已关闭"
    shot(page, "agent-flow-closed")


def test_a_customer_sends_the_public_form_and_follows_the_status_link(page):
    """The public form in a browser: a person types slower than the spam timer allows a bot to."""
    page.goto(reverse("public:form"))
    page.fill("#id_name", "李医生")
    page.fill("#id_phone", "13912345678")
    page.select_option("#id_category", "order_delivery")
    page.fill("#id_subject", "订单到货数量不符")
    page.fill("#id_description", "订单到货少了两箱。")
    page.check("#id_privacy")  # the personal information notice, agreed to
    page.wait_for_timeout(3200)  # faster than 3 s counts as a bot
    with page.expect_navigation():
        page.locator("form button[type=submit]").last.click()
    number = page.locator("#ticket-number").inner_text()
    ticket = Ticket.objects.get(number=number)
    assert ticket.channel == "web" and ticket.caller_phone.replace(" ", "") == "13912345678"
    with page.expect_navigation():
        page.click("#status-link")
    assert number in page.content() and "订单到货数量不符" in page.content()
