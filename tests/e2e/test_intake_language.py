"""The intake form's customer's language in a real Chromium: choosing a person sets it to the language on their record
(else Simplified Chinese), read out to a screen reader, until the agent chooses one — which then stays."""

import re

import pytest
from django.urls import reverse

from pharmacrm.customers import services as customers
from pharmacrm.customers.models import Person
from pharmacrm.servicedesk.models import Ticket

from .conftest import sign_in

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_the_language_follows_the_person_chosen_until_the_agent_chooses_one(page, users, xiehe):
    zhang = Person.objects.get(name="张伟")
    customers.update_person(users["admin"], zhang, {"preferred_language": "en"}, zhang.version)
    sign_in(page, "agent")
    page.goto(reverse("servicedesk:ticket-create"))
    assert page.input_value("#id_language") == "zh-hans"

    page.select_option("#id_institution", str(xiehe.pk))  # its people are loaded into the person select
    page.locator(f"#id_person option[value='{zhang.pk}']").wait_for(state="attached")
    page.select_option("#id_person", str(zhang.pk))
    assert page.input_value("#id_language") == "en"
    said = page.locator("#id_language_said")
    assert said.get_attribute("aria-live") == "polite" and "英文" in said.inner_text()
    page.select_option("#id_person", "")  # no person: the site's language again
    assert page.input_value("#id_language") == "zh-hans"

    # the agent's own choice stays whoever is chosen afterwards, and is the ticket's
    page.select_option("#id_language", "zh-hant")
    page.select_option("#id_person", str(zhang.pk))
    assert page.input_value("#id_language") == "zh-hant"
    page.select_option("#id_category", "drug_info")
    page.fill("#id_subject", "电话咨询繁体")
    with page.expect_navigation():
        page.locator("#ticket-form button[type=submit].btn-primary").click()
    assert re.search(r"/service/tickets/\d+/$", page.url), page.url
    assert Ticket.objects.get(subject="电话咨询繁体").language == "zh-hant"

    # the preset left as the person set it: the person's language
    page.goto(reverse("servicedesk:ticket-create"))
    page.select_option("#id_institution", str(xiehe.pk))
    page.locator(f"#id_person option[value='{zhang.pk}']").wait_for(state="attached")
    page.select_option("#id_person", str(zhang.pk))
    page.select_option("#id_category", "drug_info")
    page.fill("#id_subject", "电话咨询英语")
    with page.expect_navigation():
        page.locator("#ticket-form button[type=submit].btn-primary").click()
    assert Ticket.objects.get(subject="电话咨询英语").language == "en"
