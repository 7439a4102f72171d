"""Odd input gets a clear answer, never a server error; limits hold before anything is read or written."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from django.utils import timezone

from pharmacrm.safety.e2b import importer
from pharmacrm.safety.models import CaseFile, ReportingRule, SafetyCase

pytestmark = pytest.mark.django_db
FDA = Path(__file__).parent / "data" / "fda-examples"


@pytest.mark.parametrize(("since", "until"), [("9999-12-30", "9999-12-31"), ("0001-01-01", "0001-01-02")])
def test_a_period_at_the_edge_of_the_calendar_is_refused_not_crashed(client_for, since, until):
    pv = client_for("pv")
    for name in ("safety:reconciliation", "safety:reconciliation-xlsx"):
        response = pv.get(reverse(name), {"since": since, "until": until})
        assert response.status_code in (200, 400), name
    api = pv.get("/api/v1/safety/reconciliation/", {"since": since, "until": until})
    assert api.status_code == 400


def test_a_tampered_row_count_on_the_edit_form_is_no_server_error(client_for, make_case):
    case = make_case()
    response = client_for("pv").post(reverse("safety:case-edit", args=[case.pk]),
                                      {"add_row": "drugs", "drugs-TOTAL_FORMS": "x"})  # fmt: skip
    assert response.status_code == 200


@pytest.mark.parametrize("value", ["²", "١٢x", "9" * 30])
def test_odd_ids_in_query_strings_are_ignored(client_for, xiehe, value):
    rep = client_for("agent")
    for url in ("/interactions/", "/interactions/?embed=1", "/interactions/new/", "/interactions/new/?_options=person"):
        sep = "&" if "?" in url else "?"
        assert rep.get(f"{url}{sep}institution={value}").status_code in (200, 400, 404), url


def test_impossible_timestamps_in_an_icsr_are_treated_as_unknown():
    assert importer.parse_datetime("20220614101010+9999") is None
    assert importer.parse_datetime("00010101") is None
    assert importer.parse_datetime("20220614101010-0500") is not None
    data = (FDA / "FAERS2022Scenario1.xml").read_bytes().replace(
        b'<availabilityTime value="20220614101010-0500"/>', b'<availabilityTime value="99991231"/>', 1
    )
    (case,) = importer.parse(data)
    assert case["latest_received_at"] == case["received_at"]  # a date in the future is not believed


def test_one_invalid_filter_does_not_drop_the_others(client_for, make_case, users, make_user):
    from pharmacrm.core.roles import Role

    other = make_user("pv2", Role.PV)
    theirs = make_case()
    SafetyCase.objects.filter(pk=theirs.pk).update(owner=other)
    page = client_for("pv").get(reverse("safety:cases"), {"mine": "1", "kind": "bogus"}).content.decode()
    assert theirs.number not in page


def test_a_case_file_over_the_limit_is_refused_and_nothing_is_stored(client_for, make_case, settings):
    settings.ATTACHMENT_MAX_BYTES = 1000
    case = make_case()
    big = SimpleUploadedFile("scan.pdf", b"%PDF-1.4\n" + b"0" * 200_000, content_type="application/pdf")
    response = client_for("pv").post(reverse("safety:case-file-upload", args=[case.pk]), {"files": big})
    assert response.status_code == 413
    assert not CaseFile.objects.exists()


def test_switching_a_rule_needs_the_version_the_page_showed(client_for):
    rule = ReportingRule.objects.get(code="US-15DAY")
    pv = client_for("pv")
    refused = pv.post(reverse("safety:rule-active", args=[rule.pk]), {"active": "1"})
    assert refused.status_code == 400 and not ReportingRule.objects.get(pk=rule.pk).active
    assert pv.post(reverse("safety:rule-active", args=[rule.pk]), {"active": "1", "version": "²"}).status_code == 400
    done = pv.post(reverse("safety:rule-active", args=[rule.pk]), {"active": "1", "version": str(rule.version)})
    assert done.status_code in (200, 302) and ReportingRule.objects.get(pk=rule.pk).active


def test_the_dismissal_reason_is_for_pv_only(client_for, users, xiehe):
    from pharmacrm.safety import services
    from pharmacrm.safety.models import Flag
    from pharmacrm.servicedesk import services as desk

    ticket = desk.create_ticket(users["agent"], {
        "subject": "来电", "description": "患者王小明用药后皮疹。", "channel": "phone", "category": "drug_info",
        "institution": xiehe, "caller_name": "张医生", "received_at": timezone.now(),
    })  # fmt: skip
    services.dismiss_flag(users["pv"], Flag.objects.get(ticket=ticket), reason="王小明的家属已撤回")
    url = reverse("safety:triage") + "?tab=recent"
    assert "王小明的家属已撤回" in client_for("pv").get(url).content.decode()
    assert "王小明的家属已撤回" not in client_for("manager").get(url).content.decode()
