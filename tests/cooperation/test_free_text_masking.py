"""Contact details typed into a cooperation project's checks (problems, measures) and acceptance remarks (对接人
王主任 139-1234-5678) were shown in clear to the roles that read cooperation projects but see personal data masked (the
analyst, the auditor): they are masked for them on the project page and in the API, as a customer's notes are; the
roles that see personal data read them as typed, and what is stored is not changed."""

from __future__ import annotations

import pytest

from pharmacrm.cooperation import services
from pharmacrm.cooperation.models import Acceptance
from tests.api.conftest import api_for  # noqa: F401  (fixture)

from .test_cooperation import TODAY, in_force, running_project, world  # noqa: F401  (fixture)

pytestmark = pytest.mark.django_db

REMARKS = "只办了一场，补办联系王主任 139-1234-5678"
PROBLEMS = "场地未定，医院联系人邮箱li.na@example.com"
CLEAR = ("139-1234-5678", "li.na@example.com")


@pytest.fixture
def project(world, users):  # noqa: F811
    project = running_project(users["rep"], in_force(users["rep"], world["ours"]))
    services.add_check(users["rep"], project, {"checked_on": TODAY(), "progress": 40, "problems": PROBLEMS,
                                               "measures": "改约，回电 13912345678"})  # fmt: skip
    services.record_acceptance(users["rep"], project, {"accepted_on": TODAY(), "standards": "两场会议",
                                                       "accepted_by": "李院长", "result": "failed", "remarks": REMARKS})  # fmt: skip
    return project


@pytest.mark.parametrize("role", ["analyst", "auditor"])
def test_the_page_and_the_api_mask_them_for_roles_that_see_personal_data_masked(client_for, project, role):
    client = client_for(role)
    page = client.get(f"/cooperation/projects/{project.pk}/").content.decode()
    assert "王主任 139****5678" in page and "l***@example.com" in page and "回电 139****5678" in page
    assert not any(v in page for v in (*CLEAR, "13912345678"))
    shown = client.get(f"/api/v1/cooperation/projects/{project.pk}/").json()
    assert shown["acceptances"][0]["remarks"] == "只办了一场，补办联系王主任 139****5678"
    assert (shown["checks"][0]["problems"], shown["checks"][0]["measures"]) == (
        "场地未定，医院联系人邮箱l***@example.com", "改约，回电 139****5678")
    listed = client.get("/api/v1/cooperation/projects/").json()["results"]
    assert "139-1234-5678" not in str(listed) and "139****5678" in str(listed)


def test_roles_that_see_personal_data_read_them_as_typed(client_for, project):
    assert REMARKS in client_for("rep").get(f"/cooperation/projects/{project.pk}/").content.decode()
    shown = client_for("manager").get(f"/api/v1/cooperation/projects/{project.pk}/").json()
    assert (shown["acceptances"][0]["remarks"], shown["checks"][0]["problems"]) == (REMARKS, PROBLEMS)
    assert Acceptance.objects.get(project=project).remarks == REMARKS


# an agreement's rights and obligations and payment terms, a project's goal
TERMS = "甲方联系人王主任 139-1234-5678，邮件li.na@example.com"
PAYMENT = "验收后30日内付款，财务对账电话 010-6512 3456"
GOAL = "举办两场学术会议，报名请联系 13912345678"


@pytest.fixture
def written(world, users):  # noqa: F811
    agreement = world["ours"]
    agreement = services.update_agreement(users["rep"], agreement, {"terms": TERMS, "payment_terms": PAYMENT},
                                          agreement.version)  # fmt: skip
    project = running_project(users["rep"], in_force(users["rep"], agreement), goal=GOAL)
    return agreement, project


@pytest.mark.parametrize("role", ["analyst", "auditor"])
def test_terms_and_goal_are_masked_for_roles_that_see_personal_data_masked(client_for, api_for, written, role):  # noqa: F811
    agreement, project = written
    client = client_for(role)
    page = client.get(f"/cooperation/{agreement.pk}/").content.decode()
    assert "王主任 139****5678" in page and "l***@example.com" in page and "010****3456" in page
    assert not any(v in page for v in ("139-1234-5678", "li.na@example.com", "6512 3456"))
    page = client.get(f"/cooperation/projects/{project.pk}/").content.decode()
    assert "报名请联系 139****5678" in page and "13912345678" not in page
    shown = api_for(role).get(f"/api/v1/cooperation/agreements/{agreement.pk}/").json()
    assert (shown["terms"], shown["payment_terms"]) == ("甲方联系人王主任 139****5678，邮件l***@example.com",
                                                        "验收后30日内付款，财务对账电话 010****3456")  # fmt: skip
    assert "139-1234-5678" not in str(api_for(role).get("/api/v1/cooperation/agreements/").json())
    assert api_for(role).get(f"/api/v1/cooperation/projects/{project.pk}/").json()["goal"] == (
        "举办两场学术会议，报名请联系 139****5678")
    for object_type, pk in (("cooperation.agreement", agreement.pk), ("cooperation.project", project.pk)):
        query = {"object_type": object_type, "object_id": pk}
        audit_page = client_for("auditor").get("/accounts/audit/", query).content.decode()
        audited = str(api_for("auditor").get("/api/v1/audit/", query).json()["results"])
        for text in (audit_page, audited):
            assert "139****5678" in text and "139-1234-5678" not in text and "13912345678" not in text


def test_terms_and_goal_are_read_as_typed_by_roles_that_see_personal_data(client_for, api_for, written):  # noqa: F811
    agreement, project = written
    assert "139-1234-5678" in client_for("rep").get(f"/cooperation/{agreement.pk}/").content.decode()
    assert GOAL in client_for("manager").get(f"/cooperation/projects/{project.pk}/").content.decode()
    shown = api_for("manager").get(f"/api/v1/cooperation/agreements/{agreement.pk}/").json()
    assert (shown["terms"], shown["payment_terms"]) == (TERMS, PAYMENT)
    assert api_for("rep").get(f"/api/v1/cooperation/projects/{project.pk}/").json()["goal"] == GOAL
    query = {"object_type": "cooperation.agreement", "object_id": agreement.pk}
    assert "139-1234-5678" in client_for("admin").get("/accounts/audit/", query).content.decode()
