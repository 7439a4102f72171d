"""Contact details typed into a cooperation project's checks (problems, measures) and acceptance remarks (对接人
王主任 139-1234-5678), an agreement's terms, a project's goal, and the titles of agreements, projects and tasks and the
standards an acceptance checked were shown in clear to the roles that read cooperation projects but see personal data
masked (the analyst, the auditor): they are masked for them on the pages, the list's export, the customer's block, in
the API and the audit trail (where the titles name the records), as a customer's notes are; the roles that see personal
data read them as typed, what is stored is not changed, and a masked editor's masks saved back are put back as
stored."""

from __future__ import annotations

import io
from decimal import Decimal

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


# an agreement's, a project's and a task's title and the standards an acceptance checked, in the words of who recorded
# them (王主任 139… 学术合作, 对接人 li.zhou@…)
AG_TITLE = "王主任 139-2222-3333 学术合作"
AG_SHOWN = "王主任 139****3333 学术合作"
PR_TITLE = "学术会议，对接人li.zhou@example.com"
PR_SHOWN = "学术会议，对接人l***@example.com"
TASK = "联系王主任 13744445555 确认场地"
TASK_SHOWN = "联系王主任 137****5555 确认场地"
STANDARDS = "两场会议，签到表由 13866667777 提供"
STANDARDS_SHOWN = "两场会议，签到表由 138****7777 提供"
TITLES_CLEAR = ("139-2222-3333", "li.zhou@example.com", "13744445555", "13866667777")


@pytest.fixture
def titled(world, users):  # noqa: F811
    rep = users["rep"]
    agreement = services.update_agreement(rep, world["ours"], {"title": AG_TITLE}, world["ours"].version)
    project = running_project(rep, in_force(rep, agreement), title=PR_TITLE)
    services.add_task(rep, project, {"title": TASK, "owner": rep.pk, "deadline": TODAY()})
    services.record_acceptance(rep, project, {"accepted_on": TODAY(), "standards": STANDARDS, "accepted_by": "李院长",
                                              "result": "failed", "remarks": "只办了一场"})  # fmt: skip
    return agreement, project


def _sheet_text(content: bytes) -> str:
    from openpyxl import load_workbook

    sheet = load_workbook(io.BytesIO(content)).active
    return "\n".join(str(c.value) for row in sheet.iter_rows() for c in row if c.value is not None)


@pytest.mark.parametrize("role", ["analyst", "auditor"])
def test_titles_and_standards_are_masked_for_roles_that_see_personal_data_masked(
    client_for, api_for, titled, world, role  # noqa: F811
):
    agreement, project = titled
    client = client_for(role)
    listed = client.get("/cooperation/").content.decode()
    page = client.get(f"/cooperation/{agreement.pk}/").content.decode()
    project_page = client.get(f"/cooperation/projects/{project.pk}/").content.decode()
    tasks = client.get("/cooperation/tasks/").content.decode()
    block = client.get(f"/cooperation/customer/{world['xiehe'].pk}/").content.decode()
    sheet = _sheet_text(client.get("/cooperation/", {"format": "xlsx"}).content)
    assert AG_SHOWN in listed and AG_SHOWN in page and AG_SHOWN in sheet and AG_SHOWN in block
    assert PR_SHOWN in page and PR_SHOWN in block and PR_SHOWN in tasks  # the agreement's projects, the task's project
    assert f"<title>{PR_SHOWN}" in project_page and f"<h1>{PR_SHOWN}</h1>" in project_page
    assert TASK_SHOWN in project_page and STANDARDS_SHOWN in project_page and TASK_SHOWN in tasks
    api = api_for(role)
    shown = api.get(f"/api/v1/cooperation/agreements/{agreement.pk}/").json()
    assert shown["title"] == AG_SHOWN
    shown = api.get(f"/api/v1/cooperation/projects/{project.pk}/").json()
    assert (shown["title"], shown["tasks"][0]["title"], shown["acceptances"][0]["standards"]) == (
        PR_SHOWN, TASK_SHOWN, STANDARDS_SHOWN)
    texts = [listed, page, project_page, tasks, block, sheet, str(shown),
             str(api.get("/api/v1/cooperation/agreements/").json()), str(api.get("/api/v1/cooperation/projects/").json())]
    task = project.tasks.get()
    for object_type, pk, name in (("cooperation.agreement", agreement.pk, f"{agreement.number} {AG_SHOWN}"),
                                  ("cooperation.project", project.pk, PR_SHOWN), ("cooperation.task", task.pk, TASK_SHOWN)):
        query = {"object_type": object_type, "object_id": pk}
        audit_page = client_for("auditor").get("/accounts/audit/", query).content.decode()
        audited = api_for("auditor").get("/api/v1/audit/", query).json()["results"]
        assert audited[0]["object_repr"] == name, audited  # the entries' names (the first one the title since)
        assert name in audit_page
        texts += [audit_page, str(audited)]
    for text in texts:
        assert not any(clear in text for clear in TITLES_CLEAR)


@pytest.mark.parametrize("role", ["analyst", "auditor"])
def test_the_list_search_does_not_find_the_digits_behind_a_masked_title(client_for, titled, role):
    client = client_for(role)
    assert AG_SHOWN in client.get("/cooperation/", {"q": "学术合作"}).content.decode()
    assert AG_SHOWN in client.get("/cooperation/", {"q": "3333"}).content.decode()  # as read
    assert AG_SHOWN not in client.get("/cooperation/", {"q": "2222"}).content.decode()  # hidden by the mask
    assert AG_TITLE in client_for("manager").get("/cooperation/", {"q": "2222"}).content.decode()


def test_titles_and_standards_are_read_as_typed_by_roles_that_see_personal_data(
    client_for, api_for, titled, world  # noqa: F811
):
    agreement, project = titled
    rep = client_for("rep")
    assert AG_TITLE in rep.get("/cooperation/").content.decode()
    assert AG_TITLE in rep.get(f"/cooperation/{agreement.pk}/").content.decode()
    page = rep.get(f"/cooperation/projects/{project.pk}/").content.decode()
    assert PR_TITLE in page and TASK in page and STANDARDS in page
    assert TASK in rep.get("/cooperation/tasks/").content.decode()
    assert PR_TITLE in client_for("manager").get(f"/cooperation/customer/{world['xiehe'].pk}/").content.decode()
    assert AG_TITLE in _sheet_text(client_for("manager").get("/cooperation/", {"format": "xlsx"}).content)
    shown = api_for("manager").get(f"/api/v1/cooperation/projects/{project.pk}/").json()
    assert (shown["title"], shown["tasks"][0]["title"], shown["acceptances"][0]["standards"]) == (
        PR_TITLE, TASK, STANDARDS)
    assert api_for("rep").get(f"/api/v1/cooperation/agreements/{agreement.pk}/").json()["title"] == AG_TITLE
    query = {"object_type": "cooperation.task", "object_id": project.tasks.get().pk}
    assert all(e["object_repr"] == TASK for e in api_for("admin").get("/api/v1/audit/", query).json()["results"])


@pytest.fixture
def analysts_run_cooperation(monkeypatch):
    """A deployment that lets its marketing analysts, who see personal data masked, run cooperation agreements too."""
    from pharmacrm.core import access
    from pharmacrm.core.roles import MATRIX, Cap, Role

    monkeypatch.setitem(MATRIX, Cap.MANAGE_COOPERATION, MATRIX[Cap.MANAGE_COOPERATION] | {Role.ANALYST})
    access._capabilities_of.cache_clear()
    yield
    access._capabilities_of.cache_clear()


def test_a_masked_editor_saving_the_masked_texts_keeps_the_stored_details(analysts_run_cooperation, client_for,
                                                                           api_for, world, users):  # noqa: F811
    rep = users["rep"]
    agreement = services.update_agreement(rep, world["ours"], {"title": AG_TITLE, "terms": TERMS}, world["ours"].version)
    client = client_for("analyst")
    form = client.get(f"/cooperation/{agreement.pk}/edit/").content.decode()
    assert AG_SHOWN in form and "甲方联系人王主任 139****5678，邮件l***@example.com" in form
    assert not any(clear in form for clear in ("139-2222-3333", "139-1234-5678", "li.na@example.com"))
    posted = {f: getattr(agreement, f) for f in ("kind", "company_signer", "customer_signer", "start_date", "end_date",
                                                 "payment_terms")}  # fmt: skip
    answer = client.post(f"/cooperation/{agreement.pk}/edit/", {
        **posted, "institution": agreement.institution_id, "owner": rep.pk, "team": agreement.team_id,
        "title": AG_SHOWN + "（续签）", "terms": "甲方联系人王主任 139****5678，邮件l***@example.com", "amount": "130000",
        "version": agreement.version})  # fmt: skip
    assert answer.status_code == 302, answer.content.decode()[:3000]
    agreement.refresh_from_db()
    assert (agreement.title, agreement.terms, agreement.amount) == (AG_TITLE + "（续签）", TERMS, Decimal("130000.00"))
    api = api_for("analyst")
    shown = api.get(f"/api/v1/cooperation/agreements/{agreement.pk}/").json()
    answer = api.patch(f"/api/v1/cooperation/agreements/{agreement.pk}/", {
        "title": shown["title"], "terms": shown["terms"], "amount": "140000", "version": shown["version"]}, format="json")
    assert answer.status_code == 200, answer.content
    assert answer.json()["title"] == AG_SHOWN + "（续签）"  # answered as the editor reads it
    agreement.refresh_from_db()
    assert (agreement.title, agreement.terms, agreement.amount) == (AG_TITLE + "（续签）", TERMS, Decimal("140000.00"))
    project = running_project(rep, in_force(rep, agreement), title=PR_TITLE, goal=GOAL)
    form = client.get(f"/cooperation/projects/{project.pk}/edit/").content.decode()
    assert PR_SHOWN in form and "报名请联系 139****5678" in form and "li.zhou@example.com" not in form
    answer = client.post(f"/cooperation/projects/{project.pk}/edit/", {
        "title": PR_SHOWN, "goal": "举办两场学术会议，报名请联系 139****5678", "responsible": rep.pk,
        "start_date": project.start_date, "end_date": project.end_date, "budget": "60000", "version": project.version})
    assert answer.status_code == 302, answer.content.decode()[:3000]
    project.refresh_from_db()
    assert (project.title, project.goal, project.budget) == (PR_TITLE, GOAL, Decimal("60000.00"))


def test_the_agreements_generated_pdf_prints_the_titles_as_typed_even_for_a_masked_reader(client_for, titled):
    """The contract as issued (docs/security.md): the analyst reads the page masked and the PDF as it was agreed."""
    from pypdf import PdfReader

    agreement, _project = titled
    data = client_for("analyst").get(f"/cooperation/{agreement.pk}/agreement.pdf").content
    text = "".join(page.extract_text() for page in PdfReader(io.BytesIO(data)).pages).replace("\x00", "")
    assert "139-2222-3333" in text and "li.zhou" in text  # the project's title wraps in its table cell
