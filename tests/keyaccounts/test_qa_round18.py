"""Session 18 (key-account programme): the withdraw button only where withdrawing works; the improvement
measures headed as measures (措施), not metrics; a cross-department review before leadership; a signed copy
named after its content; the agreement archive never lists everything on a wrong filter; unique wrapper ids
for the many forms of one kind on the plan page."""

from __future__ import annotations

import datetime as dt
import re
from collections import Counter

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from django.utils import timezone, translation
from rest_framework.test import APIClient

from pharmacrm.core.roles import Role
from pharmacrm.keyaccounts import services
from pharmacrm.keyaccounts.choices import AgreementStatus, ProposalStatus
from pharmacrm.keyaccounts.models import Agreement, Proposal
from tests.api.conftest import token_for

from .programme_fixtures import *  # noqa: F403  (fixtures)
from .programme_fixtures import sign_code, tiny_pdf, tiny_png

pytestmark = pytest.mark.django_db
EN = {"HTTP_ACCEPT_LANGUAGE": "en"}


# --- 1. the withdraw button is shown exactly where withdrawing works -----------------------------------------


def _offers_withdraw(client, proposal) -> bool:
    page = client.get(reverse("keyaccounts:proposal", args=[proposal.pk]), **EN).content.decode()
    return reverse("keyaccounts:proposal-withdraw", args=[proposal.pk]) in page


def _withdraws(client, proposal) -> bool:
    client.post(reverse("keyaccounts:proposal-withdraw", args=[proposal.pk]), **EN)
    return Proposal.objects.get(pk=proposal.pk).status == ProposalStatus.WITHDRAWN


def test_another_marketing_analyst_is_not_offered_to_withdraw_someone_elses_proposal(
    users, xiehe, make_proposal, make_user, client_for
):
    proposal = make_proposal(xiehe, submitted=False)  # the analyst's, in review
    colleague = client_for("analyst")
    colleague.force_login(make_user("analyst2", Role.ANALYST))

    assert not _offers_withdraw(colleague, proposal)
    assert not _withdraws(colleague, proposal)  # the button would only have led to a refusal
    assert _offers_withdraw(client_for("analyst"), proposal)  # the proposer is offered it …
    assert _withdraws(client_for("analyst"), proposal)  # … and it works


def test_once_it_waits_for_leadership_only_leadership_is_offered_to_withdraw(users, xiehe, make_proposal, client_for):
    proposal = make_proposal(xiehe)  # sent to leadership
    proposer = client_for("analyst")

    assert not _offers_withdraw(proposer, proposal)
    assert not _withdraws(proposer, proposal)
    manager = client_for("manager")
    assert _offers_withdraw(manager, proposal)
    assert _withdraws(manager, proposal)
    # closed now: offered to nobody
    assert not _offers_withdraw(manager, proposal) and not _offers_withdraw(proposer, proposal)


def test_a_decided_proposal_offers_no_withdrawal(users, xiehe, make_proposal, client_for):
    proposal = make_proposal(xiehe)
    services.decide(users["manager"], proposal, approve=True, comment="同意", otp_code=sign_code(users["manager"]))

    for role in ("analyst", "manager", "admin"):
        assert not _offers_withdraw(client_for(role), proposal), role
    assert services.may_withdraw(users["manager"], proposal) is False


# --- 2. improvement measures are measures (措施), not metrics (指标) ------------------------------------------


def test_the_improvement_measures_table_is_not_headed_metric(users, xiehe, listed, client_for):
    account = listed(xiehe)
    services.add_measure(users["manager"], account, title="缩短首次响应时间", owner=users["kam"],
                         due_date=timezone.localdate() + dt.timedelta(days=30))  # fmt: skip
    url = reverse("keyaccounts:account", args=[account.pk])

    zh = client_for("manager").get(url, HTTP_ACCEPT_LANGUAGE="zh-hans").content.decode()
    head = zh.split('id="measures"')[1].split("</thead>")[0]
    assert "缩短首次响应时间" in zh and "指标" not in head  # the scoring models' "Measure" (指标) is not used here
    en = client_for("manager").get(url, **EN).content.decode()
    assert '<th scope="col">Measure</th>' in en.split('id="measures"')[1].split("</thead>")[0]
    with translation.override("zh-hans"):  # the scoring measure keeps its meaning
        assert translation.gettext("Measure") == "指标"


def test_an_improvement_measure_sent_twice_is_added_once(users, xiehe, staffed, client_for):
    from pharmacrm.servicedesk.models import ImprovementAction

    account = staffed(xiehe)
    due = (timezone.localdate() + dt.timedelta(days=30)).isoformat()
    post = {"measure-title": "缩短首次响应时间", "measure-owner": users["kam"].pk, "measure-due_date": due}
    client = client_for("manager")
    url = reverse("keyaccounts:measure-add", args=[account.pk])

    first = client.post(url, post, **EN)
    again = client.post(url, post, follow=True, **EN)  # a double click

    assert first.status_code == 302 and again.status_code == 200
    assert ImprovementAction.objects.filter(institution=xiehe, title="缩短首次响应时间").count() == 1
    assert "the improvement action was opened then, and not a second time" in again.content.decode()


# --- 3. a cross-department review before leadership (seed 001 §3.1) ------------------------------------------


def _send(client, proposal):
    proposal.refresh_from_db()
    return client.post(reverse("keyaccounts:proposal-submit", args=[proposal.pk]),
                       {"submit-version": proposal.version}, **EN)  # fmt: skip


def test_marketings_opinion_alone_does_not_take_a_proposal_to_leadership(users, xiehe, client_for):
    proposal = services.propose(users["analyst"], xiehe, reason="重点医院")
    services.give_opinion(users["analyst"], proposal, opinion="support", comment="市场部支持")
    analyst = client_for("analyst")

    page = analyst.get(reverse("keyaccounts:proposal", args=[proposal.pk]), **EN).content.decode()
    assert "besides marketing, at least 1 other department" in page  # said before anyone tries
    refused = _send(analyst, proposal)
    assert refused.status_code == 400
    assert "besides marketing, at least 1 other department" in refused.content.decode()
    assert Proposal.objects.get(pk=proposal.pk).status == ProposalStatus.REVIEW

    services.give_opinion(users["pv"], proposal, opinion="neutral")  # quality assurance
    page = analyst.get(reverse("keyaccounts:proposal", args=[proposal.pk]), **EN).content.decode()
    assert 'id="review-shortfall"' not in page
    assert _send(analyst, proposal).status_code == 302
    assert Proposal.objects.get(pk=proposal.pk).status == ProposalStatus.SUBMITTED


def test_the_number_of_other_departments_is_configurable(users, xiehe, ruijin, settings, client_for):
    settings.KEYACCOUNTS_REVIEW_OTHER_DEPARTMENTS = 2
    proposal = services.propose(users["analyst"], xiehe, reason="重点医院")
    services.give_opinion(users["analyst"], proposal, opinion="support")
    services.give_opinion(users["kam"], proposal, opinion="support")
    analyst = client_for("analyst")

    refused = _send(analyst, proposal)
    assert refused.status_code == 400 and "at least 2 other departments" in refused.content.decode()
    services.give_opinion(users["agent"], proposal, opinion="neutral")  # customer service
    assert _send(analyst, proposal).status_code == 302

    settings.KEYACCOUNTS_REVIEW_OTHER_DEPARTMENTS = 0  # a company that lets marketing's opinion suffice
    other = services.propose(users["analyst"], ruijin, reason="区域影响力强")
    services.give_opinion(users["analyst"], other, opinion="support")
    assert _send(analyst, other).status_code == 302


def test_the_api_refuses_to_send_with_marketings_opinion_alone(users, xiehe):
    proposal = services.propose(users["analyst"], xiehe, reason="重点医院")
    services.give_opinion(users["analyst"], proposal, opinion="support")
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {token_for(users['analyst'])}", HTTP_ACCEPT_LANGUAGE="en")

    r = api.post(f"/api/v1/keyaccounts/proposals/{proposal.pk}/submit/", {"version": proposal.version}, format="json")

    assert r.status_code == 400 and "besides marketing" in str(r.json())
    assert Proposal.objects.get(pk=proposal.pk).status == ProposalStatus.REVIEW


# --- 4. a signed copy is named after what it is ----------------------------------------------------------------


@pytest.fixture
def agreement(users, xiehe, with_plan):
    account, _plan = with_plan(xiehe)
    today = timezone.localdate()
    return services.generate_agreement(users["kam"], account, start_date=today, end_date=today + dt.timedelta(days=365))


def _upload_signed(client, agreement, name: str, content: bytes):
    prefix = f"signed{agreement.pk}"
    return client.post(reverse("keyaccounts:agreement-signed", args=[agreement.pk]), {
        f"{prefix}-signed_date": timezone.localdate().isoformat(), f"{prefix}-version": agreement.version,
        f"{prefix}-signed_copy": SimpleUploadedFile(name, content, content_type="image/jpeg"),
    }, **EN)  # fmt: skip


def test_a_pdf_uploaded_under_a_jpg_name_is_kept_and_offered_as_a_pdf(agreement, client_for):
    kam = client_for("kam")

    assert _upload_signed(kam, agreement, "协和签署页.jpg", tiny_pdf()).status_code == 302

    agreement.refresh_from_db()
    assert agreement.status == AgreementStatus.SIGNED
    assert agreement.signed_copy_name == "协和签署页.pdf" and agreement.signed_copy.endswith(".pdf")
    download = kam.get(reverse("keyaccounts:agreement-signed-copy", args=[agreement.pk]))
    assert download["Content-Type"] == "application/pdf"
    assert 'filename="".pdf"' not in download["Content-Disposition"]
    assert download["Content-Disposition"].endswith("%E5%8D%8F%E5%92%8C%E7%AD%BE%E7%BD%B2%E9%A1%B5.pdf")


def test_a_name_without_extension_or_with_the_right_one_is_kept(agreement, client_for):
    assert services.signed_copy_name("scan", ".png") == "scan.png"
    assert services.signed_copy_name("scan.JPEG", ".jpg") == "scan.JPEG"
    assert services.signed_copy_name("scan.v2", ".pdf") == "scan.v2.pdf"
    assert services.signed_copy_name("scan.png", ".jpg") == "scan.jpg"
    assert _upload_signed(client_for("kam"), agreement, "page.pdf", tiny_png()).status_code == 302
    agreement.refresh_from_db()
    assert agreement.signed_copy_name == "page.png"


def test_a_copy_kept_before_under_a_wrong_name_is_offered_under_the_right_one(agreement, client_for):
    assert _upload_signed(client_for("kam"), agreement, "signed.pdf", tiny_pdf()).status_code == 302
    Agreement.objects.filter(pk=agreement.pk).update(signed_copy_name="signed.jpg")  # as an older version kept it

    download = client_for("kam").get(reverse("keyaccounts:agreement-signed-copy", args=[agreement.pk]))

    assert download["Content-Type"] == "application/pdf" and 'filename="signed.pdf"' in download["Content-Disposition"]


def test_a_file_that_is_neither_pdf_nor_png_nor_jpeg_is_refused_whatever_its_name(agreement, client_for):
    gif = b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff!\xf9\x04\x00\x00\x00\x00\x00,\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;"

    r = _upload_signed(client_for("kam"), agreement, "signed.pdf", gif)

    assert r.status_code == 400 and "Upload the signed copy as a PDF, PNG or JPEG file." in r.content.decode()
    agreement.refresh_from_db()
    assert agreement.status == AgreementStatus.DRAFT and not agreement.signed_copy


# --- 5. the archive never lists everything on a wrong filter ---------------------------------------------------


def test_a_wrong_status_filter_shows_the_error_and_no_agreements(agreement, client_for):
    archive = client_for("kam")
    url = reverse("keyaccounts:agreements")
    assert f'data-id="{agreement.pk}"' in archive.get(url, **EN).content.decode()

    page = archive.get(url, {"status": "bogus"}, **EN).content.decode()

    assert f'data-id="{agreement.pk}"' not in page
    assert 'id="archive-filter-error"' in page and "Select a valid choice" in page
    assert "Correct the filter to see the agreements." in page
    # a right one still filters
    assert f'data-id="{agreement.pk}"' in archive.get(url, {"status": "draft"}, **EN).content.decode()
    assert f'data-id="{agreement.pk}"' not in archive.get(url, {"status": "signed"}, **EN).content.decode()


# --- 6. unique wrapper ids for the many forms of one kind -------------------------------------------------------


def test_the_plan_page_repeats_no_field_wrapper_id(users, xiehe, with_plan, client_for):
    account, plan = with_plan(xiehe)
    draft = services.start_plan(users["kam"], account, goals="新版本")  # a draft with the items copied: edit forms
    page = client_for("kam").get(reverse("keyaccounts:account", args=[account.pk]), **EN).content.decode()

    ids = Counter(re.findall(r'\bid="(field-[^"]+)"', page))
    assert ids and not [i for i, n in ids.items() if n > 1]
    item = draft.items.order_by("pk").first()
    in_force = plan.items.order_by("pk").first()
    assert f'id="field-item{item.pk}-title"' in page and f'id="field-progress{in_force.pk}-status"' in page
    # the wrapper's id and the error box's id name the same form field
    assert f'id="id_item{item.pk}-title_error"' in page
