"""Session 57 (API QA): the stage playbook and the stage tasks honour If-Match as every other versioned record does.
PATCH /engagement/playbook/{id}/ read only the body's `version`: a manager's client sending the ETag's version in
If-Match (as the API documentation says any change may) overwrote a colleague's change made in the meantime, and
`…/done/`, `…/skip/` of a stage task did the same; the playbook answered no ETag to send back."""

from __future__ import annotations

import pytest

from pharmacrm.core.models import Region
from pharmacrm.customers import services as customers
from pharmacrm.engagement.models import StageAction, StageTask, StageTaskStatus

pytestmark = pytest.mark.django_db


def test_a_playbook_change_from_a_stale_if_match_is_refused_and_changes_nothing(api_for, users):
    action = StageAction.objects.filter(active=True).order_by("id").first()
    manager = api_for("manager", lang="zh-hans")
    url = f"/api/v1/engagement/playbook/{action.pk}/"
    loaded = manager.get(url)
    assert loaded["ETag"] == f'"{action.version}"'
    colleague = manager.patch(url, {"title": "同事改的标题"}, format="json", HTTP_IF_MATCH=loaded["ETag"])
    assert colleague.status_code == 200, colleague.content
    assert colleague["ETag"] == f'"{action.version + 1}"'

    stale = manager.patch(url, {"title": "我改的标题"}, format="json", HTTP_IF_MATCH=loaded["ETag"])

    assert stale.status_code == 409, stale.content
    assert stale.json()["current_version"] == action.version + 1
    assert StageAction.objects.get(pk=action.pk).title == "同事改的标题"


@pytest.mark.parametrize(("step", "body"), [("done", {"note": "已电话联系"}), ("skip", {"reason": "客户暂停合作"})])
def test_a_stage_task_closed_from_a_stale_if_match_is_refused(api_for, users, step, body):
    inst = customers.create_institution(users["rep"], {"name": "北京天坛医院", "kind": "hospital",
                                                       "region": Region.objects.get(code="110105")})  # fmt: skip
    task = StageTask.objects.filter(institution=inst, status=StageTaskStatus.OPEN).order_by("id").first()
    StageTask.objects.filter(pk=task.pk).update(version=task.version + 1)  # changed since the rep loaded it

    response = api_for("rep").post(f"/api/v1/engagement/stage-tasks/{task.pk}/{step}/", body, format="json",
                                   HTTP_IF_MATCH=f'"{task.version}"')  # fmt: skip

    assert response.status_code == 409, response.content
    assert StageTask.objects.get(pk=task.pk).status == StageTaskStatus.OPEN
