"""Session 17 review: a ticket's files (a prescription, a lab report) are for those who handle tickets or may
see personal data, not for the analyst, who sees tickets with personal data masked — on the page, the web
download and the API."""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from pharmacrm.servicedesk import attachments, services

ROLES = ["admin", "manager", "kam", "agent", "expert", "support", "aftersales", "rep", "pv", "analyst", "auditor"]
MAY = {"admin", "manager", "kam", "agent", "expert", "support", "aftersales", "rep", "pv", "auditor"}


@pytest.fixture
def prescription(users, xiehe):
    ticket = services.create_ticket(users["agent"], {"subject": "处方咨询", "channel": "phone", "category": "drug_info",
                                                     "institution": xiehe})  # fmt: skip
    return attachments.store_upload(users["agent"], ticket, SimpleUploadedFile("处方.pdf", b"%PDF-1.4\n%%EOF\n"))


@pytest.mark.parametrize("role", ROLES)
def test_who_may_download_a_tickets_file(role, prescription, client_for, api_for):
    web = client_for(role).get(f"/service/attachments/{prescription.pk}/")
    api = api_for(role).get(f"/api/v1/tickets/{prescription.ticket_id}/attachments/{prescription.pk}/download/")
    page = client_for(role).get(f"/service/tickets/{prescription.ticket_id}/", HTTP_ACCEPT_LANGUAGE="en")

    expected = 200 if role in MAY else 403
    assert (web.status_code, api.status_code) == (expected, expected)
    link = f'href="/service/attachments/{prescription.pk}/"'
    if page.status_code == 200:
        assert (link in page.content.decode()) == (role in MAY)
