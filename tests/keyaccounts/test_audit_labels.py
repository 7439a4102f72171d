"""The audit trail and the home page's "recent changes" name a key account's records by what a user recognises
— the account's number, the product, the reviewer — not by database ids ("2 7" was a trial offer)."""

from __future__ import annotations

import pytest
from django.urls import reverse

from pharmacrm.core.models import AuditEntry
from pharmacrm.keyaccounts import services
from pharmacrm.servicedesk.models import Product

from .programme_fixtures import *  # noqa: F403

pytestmark = pytest.mark.django_db


def _label(obj) -> str:
    return AuditEntry.objects.filter(object_type=obj._meta.label_lower, object_id=str(obj.pk)).latest("seq").object_repr


def test_trial_offers_plans_and_team_members_are_named_by_account_number(client, users, xiehe, staffed):
    account = staffed(xiehe)
    product = Product.objects.create(brand_name="新药", generic_name="新药片", dosage_form="片剂", strength="10mg")
    trial = services.offer_trial(users["kam"], account, product=product)
    plan = services.start_plan(users["kam"], account)
    assert _label(trial) == f"{account.number} · 新药（新药片）10mg"
    assert _label(plan) == f"{account.number} v{plan.version_number}"
    member = account.members.select_related("user").first()
    assert str(member) == f"{account.number} · {member.user}"
    client.force_login(users["kam"])
    page = client.get(reverse("home")).content.decode()
    assert f"{account.number} · 新药（新药片）10mg" in page


def test_a_review_is_named_by_proposal_number_and_reviewer(users, xiehe, make_proposal):
    proposal = make_proposal(xiehe, submitted=False)
    review = services.give_opinion(users["rep"], proposal, opinion="support", comment="同意")
    assert str(review) == f"{proposal.number} · {users['rep']}"


def test_a_tickets_note_is_named_by_the_ticket_number(users, xiehe):
    from pharmacrm.servicedesk import conversation
    from pharmacrm.servicedesk import services as desk
    from pharmacrm.servicedesk.choices import MessageKind

    ticket = desk.create_ticket(users["agent"], {"subject": "咨询用法", "channel": "phone", "category": "drug_info",
                                                 "institution": xiehe})  # fmt: skip
    message = conversation.post_message(users["agent"], ticket, kind=MessageKind.NOTE, body="已与物流部确认。")
    assert _label(message).startswith(ticket.number + " ")


def test_the_progress_report_of_one_account_counts_it_in_the_singular(client, users, xiehe, staffed):
    """The progress report's PDF of one key account read "1 key accounts, as of …"."""
    import io

    from pypdf import PdfReader

    account = staffed(xiehe)
    client.force_login(users["manager"])
    response = client.get(reverse("keyaccounts:report-pdf"), {"account": account.pk}, HTTP_ACCEPT_LANGUAGE="en")
    assert response.status_code == 200
    body = b"".join(response.streaming_content) if response.streaming else response.content
    text = "".join(p.extract_text() for p in PdfReader(io.BytesIO(body)).pages).replace("\x00", "")
    assert "1 key account, as of" in text and "1 key accounts" not in text
