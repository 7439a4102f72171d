"""Contact details typed into a cooperation project's checks (problems, measures) and acceptance remarks (对接人
王主任 139-1234-5678) were shown in clear to the roles that read cooperation projects but see personal data masked (the
analyst, the auditor): they are masked for them on the project page and in the API, as a customer's notes are; the
roles that see personal data read them as typed, and what is stored is not changed."""

from __future__ import annotations

import pytest

from pharmacrm.cooperation import services
from pharmacrm.cooperation.models import Acceptance

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
