"""The lifecycle's pages and API: stage tasks by import, marking done (an interaction recorded) and skipping, who
sees which tasks (owner, team lead, manager, auditor), the overview's query count, the playbook's editing, the
morning reminder (once per task), the nightly sweep, the Customer 360 block, a page in each language."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from pharmacrm.core.models import AuditEntry, Region
from pharmacrm.customers import importer
from pharmacrm.customers import services as customers
from pharmacrm.customers.models import Institution
from pharmacrm.engagement import playbook
from pharmacrm.engagement.models import Interaction, StageAction, StageTask
from pharmacrm.engagement.models import StageTaskStatus as TS
from pharmacrm.notify.models import Notification

pytestmark = pytest.mark.django_db

EN = {"HTTP_ACCEPT_LANGUAGE": "en"}


def _hospital(user, name="北京天坛医院", **values):
    region = Region.objects.get(code="110105")
    return customers.create_institution(user, {"name": name, "kind": "hospital", "region": region, **values})


def _tasks(inst, **where):
    return list(StageTask.objects.filter(institution=inst, **where).order_by("action__position", "id"))


# --- the import path ------------------------------------------------------------------------------------------


def _csv(tmp_path, stage: str):
    path = tmp_path / f"i-{stage}.csv"
    path.write_text(f"机构名称,机构类型,行政区划代码,生命周期阶段,负责人,外部编号\n北京垂杨柳医院,医院,110105,{stage},rep,H-1\n",
                    encoding="utf-8")  # fmt: skip
    return path


def test_an_import_gives_the_stage_tasks_and_a_second_one_moves_them_on(users, tmp_path):
    job = importer.import_file(_csv(tmp_path, "意向客户"), "institutions", users["kam"], mode="all")
    assert (job.status, job.created_count) == ("done", 1), job.message
    inst = Institution.objects.get(external_id="H-1")
    assert inst.owner_id == users["rep"].pk and inst.stage == "intent"
    assert [t.status for t in _tasks(inst, stage="intent")] == [TS.OPEN, TS.OPEN]

    job = importer.import_file(_csv(tmp_path, "决策阶段"), "institutions", users["kam"], mode="all")
    assert job.updated_count == 1
    assert {t.status for t in _tasks(inst, stage="intent")} == {TS.LEFT}
    assert [t.status for t in _tasks(inst, stage="decision")] == [TS.OPEN, TS.OPEN]

    importer.import_file(_csv(tmp_path, "决策阶段"), "institutions", users["kam"], mode="all")  # unchanged
    assert len(_tasks(inst)) == 4


# --- doing the tasks ------------------------------------------------------------------------------------------


def test_mark_done_records_the_interaction_and_skip_needs_a_reason(users, client_for):
    inst = _hospital(users["rep"])
    first, second = _tasks(inst)
    client = client_for("rep")

    response = client.post(f"/interactions/stage-tasks/{first.pk}/done/",
                           {"note": "介绍了新剂型", "version": first.version})  # fmt: skip
    assert response.status_code == 302
    first.refresh_from_db()
    assert first.status == TS.DONE and first.done_on == timezone.localdate()
    interaction = Interaction.objects.get(pk=first.interaction_id)
    assert (interaction.institution_id, interaction.channel, interaction.notes) == (inst.pk, "phone", "介绍了新剂型")
    assert interaction.subject == "介绍公司及产品"  # the default's title, in the recording user's language

    page = client.post(f"/interactions/stage-tasks/{second.pk}/skip/", {"reason": " "}, follow=True, **EN)
    assert "Say why the task is skipped." in page.content.decode()
    second.refresh_from_db()
    assert second.status == TS.OPEN
    client.post(f"/interactions/stage-tasks/{second.pk}/skip/", {"reason": "客户暂停采购", "version": second.version})
    second.refresh_from_db()
    assert (second.status, second.reason) == (TS.SKIPPED, "客户暂停采购")
    assert AuditEntry.objects.filter(object_type="engagement.stagetask", object_id=str(second.pk)).exists()

    again = client.post(f"/interactions/stage-tasks/{second.pk}/done/", {}, follow=True, **EN)
    assert "This task is no longer open" in again.content.decode()


def test_the_api_marks_done_and_refuses_a_stale_version(users, api_for):
    inst = _hospital(users["rep"])
    task = _tasks(inst)[0]
    api = api_for("rep")

    assert api.post(f"/api/v1/engagement/stage-tasks/{task.pk}/done/", {"version": 99}, format="json").status_code == 409
    response = api.post(f"/api/v1/engagement/stage-tasks/{task.pk}/done/", {"note": "电话沟通", "version": 1},
                        format="json")  # fmt: skip
    assert response.status_code == 200, response.content
    assert response.json()["status"] == "done" and response.json()["interaction"]
    skip = api.post(f"/api/v1/engagement/stage-tasks/{_tasks(inst)[1].pk}/skip/", {}, format="json")
    assert skip.status_code == 400 and "reason" in skip.json()


# --- who sees what --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("role, tasks_page, overview, playbook_edit", [
    ("admin", 200, 200, 200), ("manager", 200, 200, 200), ("auditor", 200, 200, 403), ("rep", 200, 403, 403),
    ("kam", 200, 403, 403), ("agent", 200, 403, 403), ("analyst", 403, 403, 403), ("pv", 403, 403, 403),
    ("expert", 403, 403, 403), ("support", 403, 403, 403), ("aftersales", 403, 403, 403),
])  # fmt: skip
def test_role_matrix_of_the_pages(role, tasks_page, overview, playbook_edit, users, client_for):
    client = client_for(role)
    assert client.get("/interactions/stage-tasks/", **EN).status_code == tasks_page
    assert client.get("/interactions/stage-tasks/overview/", **EN).status_code == overview
    assert client.get("/interactions/playbook/new/", **EN).status_code == playbook_edit
    assert client.get("/interactions/stage-tasks/export.xlsx", **EN).status_code == tasks_page


def test_the_export_is_named_in_the_readers_language_and_a_name_like_a_formula_stays_text(users, client_for):
    import io

    from openpyxl import load_workbook

    inst = _hospital(users["rep"])
    Institution.objects.filter(pk=inst.pk).update(name='=HYPERLINK("http://evil.example","天坛")')
    response = client_for("rep").get("/interactions/stage-tasks/export.xlsx", HTTP_ACCEPT_LANGUAGE="zh-hans")
    assert "filename*=utf-8''%E9%98%B6%E6%AE%B5%E4%BB%BB%E5%8A%A1-" in response["Content-Disposition"]  # 阶段任务
    assert "no-store" in response["Cache-Control"]
    names = [row[0] for row in load_workbook(io.BytesIO(response.content)).active.iter_rows(min_row=2)]
    assert len(names) == len(_tasks(inst)) >= 1
    assert {(c.value, c.data_type) for c in names} == {('=HYPERLINK("http://evil.example","天坛")', "s")}


def test_owner_team_lead_manager_and_auditor_see_the_tasks_they_should(users, api_for, make_user, team_north):
    from pharmacrm.core.roles import Role

    rep = users["rep"]
    inst = _hospital(rep, team=team_north)
    other = make_user("rep2", Role.REP, teams=[team_north])
    lead = make_user("lead", Role.KAM)
    team_north.lead = lead
    team_north.save()

    def listed(who):
        response = api_for(who).get("/api/v1/engagement/stage-tasks/") if isinstance(who, str) else who
        return {t["institution"] for t in response.json()["results"]}

    from rest_framework.test import APIClient

    from tests.api.conftest import token_for

    def as_user(user):
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Token {token_for(user)}")
        return client.get("/api/v1/engagement/stage-tasks/")

    assert listed("rep") == {inst.pk}
    assert listed(as_user(other)) == set()  # a colleague in the team who does not lead it
    assert listed(as_user(lead)) == {inst.pk}  # the team's lead
    assert listed("manager") == {inst.pk} and listed("auditor") == {inst.pk}
    assert listed("agent") == set()
    task = _tasks(inst)[0]
    assert api_for("auditor").post(f"/api/v1/engagement/stage-tasks/{task.pk}/done/", {}, format="json").status_code == 403
    assert as_user(other).status_code == 200
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token_for(other)}")
    assert client.post(f"/api/v1/engagement/stage-tasks/{task.pk}/done/", {}, format="json").status_code == 404


def test_the_playbook_is_read_by_task_roles_and_written_by_managers_versioned_and_audited(users, api_for):
    action = StageAction.objects.get(preset="potential.introduce")
    assert api_for("rep").get("/api/v1/engagement/playbook/").status_code == 200
    assert api_for("analyst").get("/api/v1/engagement/playbook/").status_code == 403
    assert api_for("rep").patch(f"/api/v1/engagement/playbook/{action.pk}/", {"due_days": 1},
                                format="json").status_code == 403  # fmt: skip
    bad = api_for("manager").patch(f"/api/v1/engagement/playbook/{action.pk}/", {"due_days": 500, "version": 1},
                                   format="json")  # fmt: skip
    assert bad.status_code == 400 and "due_days" in bad.json()
    ok = api_for("manager").patch(f"/api/v1/engagement/playbook/{action.pk}/", {"due_days": 1, "version": 1},
                                  format="json")  # fmt: skip
    assert ok.status_code == 200 and ok.json()["version"] == 2
    stale = api_for("manager").patch(f"/api/v1/engagement/playbook/{action.pk}/", {"due_days": 2, "version": 1},
                                     format="json")  # fmt: skip
    assert stale.status_code == 409
    entry = AuditEntry.objects.filter(object_type="engagement.stageaction", object_id=str(action.pk)).latest("seq")
    assert entry.changes == {"due_days": [3, 1]}
    inst = _hospital(users["rep"])  # new customers follow the change
    assert _tasks(inst)[0].due_on == playbook.due_date(timezone.localdate(), 1)


def test_the_playbook_page_edits_an_action_with_field_errors(users, client_for):
    action = StageAction.objects.get(preset="churned.survey")
    client = client_for("manager")
    data = {"stage": "churned", "position": 2, "kind": "survey", "title": "", "due_days": 999, "assignee": "owner",
            "active": "on", "version": action.version}  # fmt: skip
    page = client.post(f"/interactions/playbook/{action.pk}/", data, **EN)
    assert page.status_code == 200 and "due_days" in page.context["form"].errors
    data["due_days"] = 7
    assert client.post(f"/interactions/playbook/{action.pk}/", data, **EN).status_code == 302
    action.refresh_from_db()
    assert (action.due_days, action.version, action.title, action.preset) == (7, 2, "", "churned.survey")


# --- pages ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("lang, words", [("zh-hans", "介绍公司及产品"), ("en", "Introduce the company and its products"),
                                         ("zh-hant", "介紹公司及產品")])  # fmt: skip
def test_my_tasks_in_each_language(lang, words, users, client_for):
    _hospital(users["rep"])
    page = client_for("rep").get("/interactions/stage-tasks/", HTTP_ACCEPT_LANGUAGE=lang).content.decode()
    assert words in page and "北京天坛医院" in page


def test_the_customer_360_block_says_the_stage_days_and_open_tasks(users, client_for):
    inst = _hospital(users["rep"])
    block = client_for("rep").get(f"/interactions/stage-tasks/customer/?institution={inst.pk}", **EN).content.decode()
    assert "Potential" in block and "0 days in this stage" in block
    assert "Introduce the company and its products" in block
    page = client_for("rep").get(f"/customers/institutions/{inst.pk}/", **EN).content.decode()
    assert "/interactions/stage-tasks/customer/?institution=" in page


def test_the_overview_counts_per_owner_with_a_fixed_number_of_queries(users, client_for, django_assert_num_queries):
    for n in range(3):
        _hospital(users["rep"], name=f"北京第{n}医院")
    _hospital(users["manager"], name="北京第九医院", owner=users["kam"])
    _hospital(users["manager"], name="无人负责医院")  # no owner: counted, no tasks
    StageTask.objects.filter(owner=users["kam"]).update(due_on=timezone.localdate() - dt.timedelta(days=2))
    client = client_for("manager")
    client.get("/interactions/stage-tasks/overview/", **EN)  # warm the session and caches
    with django_assert_num_queries(9):
        page = client.get("/interactions/stage-tasks/overview/", **EN)
    rows = {o.name: o for o in page.context["owners"]}
    assert (rows["rep"].open, rows["rep"].overdue, rows["kam"].overdue) == (6, 0, 2)
    assert page.context["without_owner"]["potential"] >= 1
    this_quarter = page.context["conversion"][-1]
    assert this_quarter["entered"]["potential"] >= 5


# --- jobs -----------------------------------------------------------------------------------------------------


def test_the_morning_reminder_tells_each_owner_once_per_task(users):
    inst = _hospital(users["rep"])
    StageTask.objects.filter(institution=inst).update(due_on=timezone.localdate() - dt.timedelta(days=1))

    assert playbook.remind() == 1
    assert playbook.remind() == 0  # the same tasks: not again
    note = Notification.objects.get(kind=playbook.REMINDER_KIND)
    assert note.recipient_id == users["rep"].pk
    _hospital(users["rep"], name="北京另一医院")
    StageTask.objects.filter(reminded_on=None).update(due_on=timezone.localdate() - dt.timedelta(days=1))
    assert playbook.remind() == 1  # a newly overdue task is


def test_the_nightly_sweep_catches_a_stage_changed_behind_the_services_back(users):
    inst = _hospital(users["rep"])
    Institution.objects.filter(pk=inst.pk).update(stage="active")  # a script, a repair

    assert playbook.sweep() == 1
    assert len(_tasks(inst, stage="active", status=TS.OPEN)) == 3
    assert {t.status for t in _tasks(inst, stage="potential")} == {TS.LEFT}
    assert playbook.sweep() == 0


def test_a_garbled_version_is_a_stale_task_not_a_server_error(users, client_for):
    """A stage task's hidden version that is not a number counts as an old one: the list says someone else changed
    the task, which stays open, instead of a 500 (found by the UI QA crawl)."""
    inst = _hospital(users["rep"])
    first, second = _tasks(inst)
    client = client_for("rep")
    for url, data in ((f"/interactions/stage-tasks/{first.pk}/done/", {"note": "介绍了新剂型", "version": "abc"}),
                      (f"/interactions/stage-tasks/{second.pk}/skip/", {"reason": "客户暂停采购", "version": "1e309"})):
        page = client.post(url, data, follow=True, **EN)
        assert page.status_code == 200
        assert "Someone else changed this task meanwhile" in page.content.decode()
    first.refresh_from_db()
    second.refresh_from_db()
    assert (first.status, second.status) == (TS.OPEN, TS.OPEN)
