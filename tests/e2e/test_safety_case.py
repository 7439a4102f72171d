"""A PV officer in a real Chromium, in Chinese: signs in with the one-time code, opens a case that misses
its reporter, fills the reporter in on the edit form and sees the case turn valid."""

import datetime as dt

import pytest
from django.urls import reverse
from django.utils import timezone

from pharmacrm.safety import services
from pharmacrm.safety.models import SafetyCase
from tests.safety.conftest import COMPLETE, sign_code

from .conftest import shot, sign_in

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_a_pv_officer_fills_the_missing_reporter_and_the_case_turns_valid(page, users):
    case = services.create_case(users["pv"], {
        **COMPLETE, "reporter_name": "", "reporter_contact": "", "reporter_institution": "", "reporter_qualification": "",
        "received_at": timezone.now() - dt.timedelta(days=1),
    })  # fmt: skip
    assert not case.valid and case.missing == ["reporter"]

    code = sign_code(users["pv"])  # sets up the officer's authenticator before the sign-in
    sign_in(page, "pv")
    assert reverse("otp") in page.url
    page.fill("#id_code", code)
    with page.expect_navigation():
        page.press("#id_code", "Enter")

    page.goto(reverse("safety:case", args=[case.pk]))
    assert page.locator("#case-valid").get_attribute("class") == "missing-badge"
    assert (
        page.locator('#criteria li[data-criterion="reporter"]').get_attribute("class") == "criterion-missing"
    )
    assert page.locator("#follow-up-task").is_visible()

    with page.expect_navigation():
        page.click("#edit-case")
    page.fill("#id_reporter_name", "陈医生")
    page.fill("#id_reporter_contact", "13900139000")
    with page.expect_navigation():
        page.click("#save-case")

    assert page.url.endswith(reverse("safety:case", args=[case.pk]))
    assert page.locator("#case-valid").get_attribute("class") == "valid-badge"
    assert page.locator('#criteria li[data-criterion="reporter"]').get_attribute("class") == "criterion-ok"
    assert page.locator("#follow-up-task").count() == 0
    assert page.locator("#reporter-name").inner_text() == "陈医生"
    shot(page, "safety-case-valid")
    case = SafetyCase.objects.get(pk=case.pk)
    assert case.valid and case.reporter_name == "陈医生"


def test_a_pv_officer_sends_the_nullification_of_a_reported_duplicate(page, users):
    """The case went to the NMPA and turned out a duplicate: the officer chooses "Nullification" on the export form,
    gives the reason, signs, and downloads the ICSR that tells the regulator; the case is nullified and says that
    its nullification was exported."""
    from lxml import etree

    from pharmacrm.safety.e2b import schema
    from pharmacrm.safety.models import Submission
    from tests.safety.conftest import next_code

    pv = users["pv"]
    case = services.create_case(pv, {**COMPLETE, "received_at": timezone.now() - dt.timedelta(days=3)})
    sent = services.issue_icsr_batch(pv, [case], purpose="regulatory")
    Submission.objects.create(case=case, jurisdiction="CN", channel="nmpa", message_id=sent.message_id,
                              submitted_at=timezone.now().replace(microsecond=0), submitted_by=pv)  # fmt: skip
    code = sign_code(pv)
    sign_in(page, "pv")
    page.fill("#id_code", code)
    with page.expect_navigation():
        page.press("#id_code", "Enter")

    page.goto(reverse("safety:case", args=[case.pk]))
    page.click("#export summary")
    form = page.locator("#export form")
    form.locator("select[name=report]").select_option("nullification")
    form.locator("textarea[name=reason]").fill("与另一病例为同一患者同一事件，重复报告")
    form.locator("input[name=otp_code]").fill(next_code(pv))
    with page.expect_download() as download:
        form.locator("button[type=submit]").click()
    xml = open(download.value.path(), "rb").read()  # noqa: SIM115

    assert schema.validate(xml, schema.BATCH) == []
    ns = {"h": schema.HL7}
    assert etree.fromstring(xml).xpath("//h:investigationCharacteristic[h:code/@code='3']/h:value/@code",
                                       namespaces=ns) == ["1"]  # fmt: skip
    page.goto(reverse("safety:case", args=[case.pk]))
    assert "status-nullified" in page.locator("#case-status").get_attribute("class")
    assert page.locator("#report-state").is_visible()
    shot(page, "safety-case-nullification-exported")
    assert SafetyCase.objects.get(pk=case.pk).status == "nullified"
