"""QA round 59 of the service desk, as its users work: what they saw on the pages that was wrong."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from django.utils import timezone


@pytest.mark.parametrize("language", ["zh-hans", "en"])
def test_the_link_form_shows_its_one_time_token_once_and_hidden(language, client_for, raise_ticket):
    """The ticket page's *Link a ticket* form rendered its one-time token a second time as a labelled field
    ("Form token", in English whatever the language), an empty box with two inputs of the same name and id."""
    ticket = raise_ticket()
    agent = client_for("agent")
    agent.cookies["django_language"] = language
    html = agent.get(f"/service/tickets/{ticket.pk}/").content.decode()
    link_form = html[html.index('id="link"'):html.index('id="merge"') if 'id="merge"' in html else None]
    assert "Form token" not in link_form
    assert 'for="id_link-form_token"' not in link_form
    assert len(re.findall(r'name="link-form_token"', link_form)) == 1
    assert 'name="link-to_ticket"' in link_form  # the fields a user fills in are still there


@pytest.mark.parametrize("language", ["zh-hans", "zh-hant"])
def test_an_improvement_actions_title_is_not_labelled_a_professional_title(language, client_for, users, xiehe):
    """The improvement action's form and list labelled its title 职称 / 職稱 — a doctor's professional title (主任医师),
    the translation of the bare "Title" the person form uses."""
    from django.utils import translation
    from lxml import html as lh

    from pharmacrm.servicedesk import revisit

    from .conftest import resolved_ticket

    ticket = resolved_ticket(users, xiehe)
    action = revisit.create_action(users["manager"], {
        "title": "缩短退货等待时间", "owner": users["manager"], "ticket": ticket,
        "due_date": timezone.localdate() + dt.timedelta(days=7),
    })  # fmt: skip
    with translation.override(language):
        expected = translation.pgettext("record title", "Title")
        professional = translation.gettext("Title")
    assert professional in ("职称", "職稱")  # the person's field keeps its own word
    manager = client_for("manager")
    manager.cookies["django_language"] = language
    pages = {
        "new": f"/service/improvements/new/?ticket={ticket.pk}",
        "edit": f"/service/improvements/{action.pk}/",
    }
    for page in pages.values():
        doc = lh.fromstring(manager.get(page).content)
        assert doc.xpath("string(//label[@for='id_title'])").strip() == expected
    listed = lh.fromstring(manager.get("/service/improvements/").content)
    headers = [th.text_content().strip() for th in listed.xpath("//main//table//th")]
    assert expected in headers and professional not in headers
    # and the audit trail's label of a changed title
    from pharmacrm.core.templatetags.crm import field_label
    from pharmacrm.servicedesk.models import ImprovementAction

    with translation.override(language):
        assert field_label(ImprovementAction, "title") not in ("职称", "職稱")


def test_an_answer_template_leaves_what_the_ticket_lacks_visible_and_says_so(users, client_for, xiehe, api_for):
    """An answer template picked on a ticket without a product or a batch read “感谢您告知使用（批号 ）后出现的情况”
    and “关于的用法用量”: the placeholders were filled with nothing and the reply looked finished. They stay in the
    text, and the composer names them."""
    from pharmacrm.servicedesk import knowledge, services

    ticket = services.create_ticket(users["agent"], {
        "subject": "用药后皮疹", "channel": "phone", "category": "adverse_reaction", "institution": xiehe,
    })  # fmt: skip
    tpl = knowledge.create_template(users["expert"], {
        "name": "不良反应登记", "language": "zh-hans",
        "body": "尊敬的{customer}：感谢您告知使用{product}（批号 {batch}）后出现的情况，工单 {ticket}。",
    })  # fmt: skip
    expected = f"尊敬的{xiehe.name}：感谢您告知使用{{product}}（批号 {{batch}}）后出现的情况，工单 {ticket.number}。"
    assert knowledge.render(tpl, ticket, users["agent"]) == expected
    preview = client_for("agent").get(f"/service/tickets/{ticket.pk}/template-preview/", {"template": tpl.pk})
    html = preview.content.decode()
    assert "使用{product}（批号 {batch}）" in html and "使用（批号 ）" not in html
    assert 'id="template-gaps"' in html and "{product} {batch}" in html
    rendered = api_for("agent").get(f"/api/v1/answer-templates/{tpl.pk}/render/", {"ticket": ticket.pk})
    assert rendered.json()["body"] == expected
    # a ticket that has them gets them filled in, and no note
    from pharmacrm.servicedesk.models import Product

    product = Product.objects.create(brand_name="安心宁", generic_name="盐酸氨氯地平片", dosage_form="片剂",
                                     strength="5mg×28片", approval_number="国药准字H20249871")  # fmt: skip
    full = services.create_ticket(users["agent"], {
        "subject": "用药后皮疹", "channel": "phone", "category": "adverse_reaction", "institution": xiehe,
        "product": product, "batch_number": "B2026031",
    })  # fmt: skip
    html = client_for("agent").get(f"/service/tickets/{full.pk}/template-preview/", {"template": tpl.pk}).content.decode()
    assert "（批号 B2026031）" in html and 'id="template-gaps"' not in html


def test_a_ticket_moved_into_a_safety_category_on_its_edit_page_goes_to_pharmacovigilance(users, client_for, xiehe):
    """Moving a ticket into 药品不良反应 on the edit page left it not safety-relevant (the page sends the box as the
    ticket had it, unticked) and, its text naming no symptom the net knows, nothing reached PV's triage."""
    from pharmacrm.safety.models import Flag
    from pharmacrm.servicedesk import services
    from pharmacrm.servicedesk.models import Ticket, TicketCategory

    ticket = services.create_ticket(users["agent"], {
        "subject": "客户反馈用药情况", "channel": "phone", "category": "drug_info", "institution": xiehe,
        "description": "客户来电，详情待回电核实",
    })  # fmt: skip
    assert not ticket.safety_relevant and not Flag.objects.filter(ticket=ticket).exists()
    agent = client_for("agent")
    agent.get(f"/service/tickets/{ticket.pk}/edit/")
    response = agent.post(f"/service/tickets/{ticket.pk}/edit/", {
        "version": ticket.version, "subject": ticket.subject, "description": ticket.description,
        "category": str(TicketCategory.objects.get(code="adverse_reaction").pk), "product": "", "batch_number": "",
        "institution": str(xiehe.pk), "person": "", "caller_name": "", "caller_phone": "", "reply_email": "",
        "reason": "实为不良反应",
    })  # fmt: skip
    assert response.status_code == 302
    ticket = Ticket.objects.get(pk=ticket.pk)
    assert ticket.category.code == "adverse_reaction" and ticket.safety_relevant
    assert Flag.objects.filter(ticket=ticket, status="pending").exists()


@pytest.mark.parametrize("language", ["zh-hans", "zh-hant"])
def test_a_merged_tickets_link_to_the_one_it_went_into_is_no_status(language, users, client_for, raise_ticket):
    """A duplicate's page linked to the ticket it was merged into as "未结 TK-…" ("unresolved", a status: the
    bare "Open"), not as a link to open it."""
    from django.utils import translation
    from lxml import html as lh

    from pharmacrm.servicedesk import linking

    dup, into = raise_ticket("重复来电"), raise_ticket("首次来电")
    linking.merge(users["agent"], dup, into, reason="同一问题", version=dup.version)
    agent = client_for("agent")
    agent.cookies["django_language"] = language
    page = lh.fromstring(agent.get(f"/service/tickets/{dup.pk}/").content)
    link = page.xpath(f"string(//*[@id='merged-into']//a[@href='/service/tickets/{into.pk}/'])").strip()
    with translation.override(language):
        status = translation.gettext("Open")
        expected = translation.pgettext("go to a ticket", "Open %(number)s") % {"number": into.number}
    assert status in ("未结", "未結")  # the status keeps its word
    assert link == expected and status not in link


def test_an_assigned_ticket_offers_no_step_to_the_status_it_is_in(users, client_for, raise_ticket):
    """An assigned ticket's page offered "Move to: 已分派"; the click wrote "已分派 → 已分派" into its history."""
    from lxml import html as lh

    from pharmacrm.servicedesk.choices import Status

    ticket = raise_ticket(assignee=users["agent"])
    assert ticket.status == Status.ASSIGNED
    page = lh.fromstring(client_for("agent").get(f"/service/tickets/{ticket.pk}/").content)
    steps = page.xpath(f"//form[@action='/service/tickets/{ticket.pk}/status/']//input[@name='to_status']/@value")
    assert Status.ASSIGNED not in steps and Status.IN_PROGRESS in steps and Status.RESOLVED in steps
