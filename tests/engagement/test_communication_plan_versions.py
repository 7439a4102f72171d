"""Session 57 (API QA): the communication plans carry a version. Two managers editing the same plan — on its page
or through /api/v1/communication-plans/{id}/ — overwrote each other silently: the one who saved last erased the
other's change without knowing. Now a change says which version it was made from, and a stale one is refused."""

from __future__ import annotations

import pytest
from django.utils import timezone

from pharmacrm.core.models import AuditEntry
from pharmacrm.engagement import plans
from pharmacrm.engagement.models import CommunicationPlan

pytestmark = pytest.mark.django_db

YEAR = timezone.localdate().year
URL = "/api/v1/communication-plans/{}/"


@pytest.fixture
def plan(users):
    return plans.save_plan(users["manager"], {"year": YEAR, "klass": "A", "goal": "每月拜访",
                                              "lines": [{"channel": "visit", "minimum": 1, "period": "month"}]})  # fmt: skip


def _form(plan, **extra) -> dict:
    data = {"year": str(YEAR), "klass": "A", "tier": "", "institution_kind": "", "goal": plan.goal,
            "version": str(plan.version),
            "lines-TOTAL_FORMS": "3", "lines-INITIAL_FORMS": "0", "lines-MIN_NUM_FORMS": "0", "lines-MAX_NUM_FORMS": "12",
            "lines-0-channel": "visit", "lines-0-minimum": "1", "lines-0-period": "month", "lines-0-note": "",
            "lines-1-channel": "", "lines-1-minimum": "", "lines-1-period": "", "lines-1-note": "",
            "lines-2-channel": "", "lines-2-minimum": "", "lines-2-period": "", "lines-2-note": ""}  # fmt: skip
    data.update(extra)
    return data


def test_the_api_answers_the_version_and_etag_and_each_change_moves_it(api_for, plan):
    manager = api_for("manager")

    loaded = manager.get(URL.format(plan.pk))
    assert loaded.json()["version"] == 1 and loaded["ETag"] == '"1"'
    changed = manager.patch(URL.format(plan.pk), {"goal": "每月两次拜访", "version": 1}, format="json")
    assert changed.status_code == 200, changed.content
    assert changed.json()["version"] == 2 and changed["ETag"] == '"2"'
    again = manager.patch(URL.format(plan.pk), {"lines": [{"channel": "phone", "minimum": 2, "period": "month"}]},
                          format="json", HTTP_IF_MATCH=changed["ETag"])  # fmt: skip
    assert again.status_code == 200 and again.json()["version"] == 3


@pytest.mark.parametrize("how", ["body", "if-match"])
def test_a_change_from_a_stale_version_is_refused_and_changes_nothing(api_for, plan, how):
    manager = api_for("manager", lang="zh-hans")
    loaded = manager.get(URL.format(plan.pk))
    colleague = api_for("admin").patch(URL.format(plan.pk), {"goal": "同事改的目标"}, format="json",
                                       HTTP_IF_MATCH=loaded["ETag"])  # fmt: skip
    assert colleague.status_code == 200, colleague.content

    sent = {"goal": "我改的目标", "lines": [{"channel": "phone", "minimum": 3, "period": "month"}]}
    if how == "body":
        stale = manager.patch(URL.format(plan.pk), {**sent, "version": loaded.json()["version"]}, format="json")
    else:
        stale = manager.patch(URL.format(plan.pk), sent, format="json", HTTP_IF_MATCH=loaded["ETag"])

    assert stale.status_code == 409, stale.content
    assert stale.json()["current_version"] == 2
    assert "已被他人修改" in stale.json()["detail"], stale.json()  # in the reader's language
    now = CommunicationPlan.objects.get(pk=plan.pk)
    assert now.goal == "同事改的目标" and now.version == 2
    assert list(now.lines.values_list("channel", "minimum")) == [("visit", 1)]
    assert AuditEntry.objects.filter(object_type="engagement.communicationplan", action="update").count() == 1


def test_an_if_match_that_is_no_version_is_refused_on_the_version_field(api_for, plan):
    response = api_for("manager").patch(URL.format(plan.pk), {"goal": "改"}, format="json", HTTP_IF_MATCH="abc",
                                        HTTP_ACCEPT_LANGUAGE="en")  # fmt: skip

    assert response.status_code == 400 and "version" in response.json()
    assert CommunicationPlan.objects.get(pk=plan.pk).goal == "每月拜访"


def test_the_page_saves_from_the_version_loaded_and_moves_it(client_for, plan):
    client = client_for("manager")
    page = client.get(f"/interactions/plans/{plan.pk}/").content.decode()
    assert 'name="version" value="1"' in page

    saved = client.post(f"/interactions/plans/{plan.pk}/", _form(plan, goal="每月两次拜访"))

    assert saved.status_code == 302
    assert CommunicationPlan.objects.get(pk=plan.pk).version == 2


def test_a_stale_page_is_refused_with_the_conflict_message_keeping_the_input(client_for, api_for, plan):
    loaded = _form(plan, goal="我改的目标", **{"lines-0-minimum": "3"})  # the page as the manager opened it
    api_for("admin").patch(URL.format(plan.pk), {"goal": "同事改的目标"}, format="json", HTTP_IF_MATCH='"1"')

    refused = client_for("manager").post(f"/interactions/plans/{plan.pk}/", loaded, HTTP_ACCEPT_LANGUAGE="en")

    page = refused.content.decode()
    assert refused.status_code == 409
    assert "Someone else changed this record while you were editing it." in page
    assert "同事改的目标" in page and "我改的目标" in page  # what the plan holds now, beside the input kept
    assert 'name="version" value="2"' in page  # sent again as it is, it saves
    now = CommunicationPlan.objects.get(pk=plan.pk)
    assert now.goal == "同事改的目标" and list(now.lines.values_list("minimum", flat=True)) == [1]

    resent = client_for("manager").post(f"/interactions/plans/{plan.pk}/", {**loaded, "version": "2"})
    assert resent.status_code == 302
    assert CommunicationPlan.objects.get(pk=plan.pk).goal == "我改的目标"


def test_a_page_posted_without_a_version_does_not_overwrite(client_for, plan):
    form = _form(plan, goal="旧页面的目标")
    del form["version"]

    response = client_for("manager").post(f"/interactions/plans/{plan.pk}/", form)

    assert response.status_code == 409
    assert CommunicationPlan.objects.get(pk=plan.pk).goal == "每月拜访"


def test_deleting_a_plan_a_colleague_changed_since_the_page_was_loaded_is_refused(client_for, plan):
    manager = client_for("manager")
    page = manager.get(f"/interactions/plans/{plan.pk}/").content.decode()
    assert f'name="version" value="{plan.version}"' in page
    plans.save_plan(plan.created_by, {"year": YEAR, "klass": "A", "goal": "同事改的目标",
                                      "lines": [{"channel": "visit", "minimum": 2, "period": "month"}]},
                    CommunicationPlan.objects.get(pk=plan.pk), version=plan.version)  # fmt: skip

    stale = manager.post(f"/interactions/plans/{plan.pk}/delete/", {"version": plan.version},
                         HTTP_ACCEPT_LANGUAGE="en", follow=True)  # fmt: skip

    assert stale.redirect_chain[-1][0] == f"/interactions/plans/{plan.pk}/"
    assert "Someone else changed this record while you were editing it" in stale.content.decode()
    assert CommunicationPlan.objects.get(pk=plan.pk).goal == "同事改的目标"  # still there, with the colleague's change
    assert not AuditEntry.objects.filter(object_type="engagement.communicationplan", action="delete").exists()
    # seen again (the current version), it is deleted
    current = CommunicationPlan.objects.get(pk=plan.pk).version
    assert manager.post(f"/interactions/plans/{plan.pk}/delete/", {"version": current}).status_code == 302
    assert not CommunicationPlan.objects.filter(pk=plan.pk).exists()


def test_a_page_delete_without_a_version_is_refused_as_stale(client_for, plan):
    """The page's delete button carries the version shown; a form without one (an old page) is stale, not a delete
    of whatever the plan holds now."""
    refused = client_for("manager").post(f"/interactions/plans/{plan.pk}/delete/", {}, HTTP_ACCEPT_LANGUAGE="en",
                                         follow=True)  # fmt: skip

    assert "Someone else changed this record while you were editing it" in refused.content.decode()
    assert CommunicationPlan.objects.filter(pk=plan.pk).exists()


def test_a_delete_sent_twice_shows_the_list_not_a_missing_page(client_for, plan):
    manager = client_for("manager")
    assert manager.post(f"/interactions/plans/{plan.pk}/delete/", {"version": plan.version}).status_code == 302

    again = manager.post(f"/interactions/plans/{plan.pk}/delete/", {"version": plan.version}, follow=True,
                         HTTP_ACCEPT_LANGUAGE="en")  # fmt: skip

    assert again.status_code == 200 and again.redirect_chain[-1][0] == f"/interactions/plans/?year={YEAR}"
    assert "This communication plan was deleted already." in again.content.decode()
    assert AuditEntry.objects.filter(object_type="engagement.communicationplan", action="delete").count() == 1
    assert manager.post("/interactions/plans/999999/delete/", {"version": 1}).status_code == 404


def test_an_api_delete_with_a_stale_if_match_is_refused_and_deletes_nothing(api_for, plan):
    manager = api_for("manager")
    loaded = manager.get(URL.format(plan.pk))
    api_for("admin").patch(URL.format(plan.pk), {"goal": "同事改的目标"}, format="json", HTTP_IF_MATCH=loaded["ETag"])

    stale = manager.delete(URL.format(plan.pk), HTTP_IF_MATCH=loaded["ETag"])

    assert stale.status_code == 409, stale.content
    assert stale.json()["current_version"] == 2
    assert CommunicationPlan.objects.get(pk=plan.pk).goal == "同事改的目标"
    assert manager.delete(URL.format(plan.pk), HTTP_IF_MATCH='"2"').status_code == 204
    assert not CommunicationPlan.objects.filter(pk=plan.pk).exists()


def test_an_api_delete_without_if_match_still_deletes(api_for, plan):
    assert api_for("manager").delete(URL.format(plan.pk)).status_code == 204
    assert not CommunicationPlan.objects.filter(pk=plan.pk).exists()
