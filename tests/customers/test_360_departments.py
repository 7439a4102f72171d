"""A hospital's Customer 360 page lists the tickets and interactions of its departments too, each naming the
department — a KAM looking at 北京协和医院 missed what its 心内科 had raised."""

from __future__ import annotations

import pytest
from django.urls import reverse

from pharmacrm.customers.models import Institution
from pharmacrm.engagement import services as engagement
from pharmacrm.servicedesk import services as desk

pytestmark = pytest.mark.django_db


@pytest.fixture
def department(xiehe):
    return Institution.objects.get(parent=xiehe, name="心内科")


def test_the_hospitals_page_lists_its_departments_tickets_naming_the_department(client, users, xiehe, department,
                                                                               ruijin):  # fmt: skip
    own = desk.create_ticket(users["agent"], {"subject": "发票开具延迟", "channel": "phone", "category": "service_process",
                                              "institution": xiehe})  # fmt: skip
    dept = desk.create_ticket(users["agent"], {"subject": "咨询漏服后如何补服", "channel": "phone",
                                               "category": "usage_guidance", "institution": department})  # fmt: skip
    other = desk.create_ticket(users["agent"], {"subject": "别家的工单", "channel": "phone", "category": "drug_info",
                                                "institution": ruijin})  # fmt: skip
    client.force_login(users["kam"])
    page = client.get(reverse("customers:institution", args=[xiehe.pk]), HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert own.number in page and dept.number in page and other.number not in page
    assert "咨询漏服后如何补服 <span class=\"muted small\">· 心内科</span>" in page
    assert "发票开具延迟 <span" not in page  # the hospital's own ticket names nothing more
    page = client.get(reverse("customers:institution", args=[department.pk]), HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert dept.number in page and own.number not in page  # a department's page stays its own


def test_the_hospitals_interactions_include_its_departments(client, users, xiehe, department):
    engagement.record_interaction(users["kam"], {"institution": xiehe, "channel": "visit", "subject": "院级拜访"})
    engagement.record_interaction(users["kam"], {"institution": department, "channel": "visit", "subject": "科室拜访"})
    client.force_login(users["kam"])
    embed = client.get(reverse("engagement:interactions"), {"embed": "1", "institution": xiehe.pk},
                       HTTP_ACCEPT_LANGUAGE="en").content.decode()  # fmt: skip
    assert "院级拜访" in embed and "科室拜访" in embed and "· 心内科" in embed
    listing = client.get(reverse("engagement:interactions"), {"institution": xiehe.pk}).content.decode()
    assert "院级拜访" in listing and "科室拜访" in listing
    listing = client.get(reverse("engagement:interactions"), {"institution": department.pk}).content.decode()
    assert "科室拜访" in listing and "院级拜访" not in listing
