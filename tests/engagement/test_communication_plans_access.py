"""Who may read and set the communication plans, on the pages and through /api/v1/communication-plans/ and
/api/v1/communication-due/; wrong input is refused by field, in the reader's language, and nothing is written."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.utils import timezone

from pharmacrm.core.models import AuditEntry
from pharmacrm.customers.models import Institution
from pharmacrm.engagement import plans
from pharmacrm.engagement.models import CommunicationPlan
from tests.api.conftest import ROLES

pytestmark = pytest.mark.django_db

EN = {"HTTP_ACCEPT_LANGUAGE": "en"}
YEAR = timezone.localdate().year
MANAGERS = {"admin", "manager"}


def _body(**extra) -> dict:
    return {"year": YEAR, "class": "B", "goal": "季度拜访，了解用药情况",
            "lines": [{"channel": "visit", "minimum": 1, "period": "quarter"},
                      {"channel": "phone", "minimum": 1, "period": "month", "note": "电话回访"}], **extra}  # fmt: skip


def _form(**extra) -> dict:
    data = {"year": str(YEAR), "klass": "B", "tier": "", "institution_kind": "", "goal": "季度拜访",
            "lines-TOTAL_FORMS": "3", "lines-INITIAL_FORMS": "0", "lines-MIN_NUM_FORMS": "0", "lines-MAX_NUM_FORMS": "12",
            "lines-0-channel": "visit", "lines-0-minimum": "1", "lines-0-period": "quarter", "lines-0-note": "",
            "lines-1-channel": "", "lines-1-minimum": "", "lines-1-period": "", "lines-1-note": "",
            "lines-2-channel": "", "lines-2-minimum": "", "lines-2-period": "", "lines-2-note": ""}  # fmt: skip
    data.update(extra)
    return data


@pytest.fixture
def plan(users):
    return plans.save_plan(users["manager"], {"year": YEAR, "klass": "A", "goal": "每月拜访",
                                              "lines": [{"channel": "visit", "minimum": 1, "period": "month"}]})  # fmt: skip


@pytest.mark.parametrize("role", ROLES)
def test_every_role_reads_the_plans_and_only_managers_set_them_through_the_api(api_for, plan, role):
    client = api_for(role)

    listed = client.get("/api/v1/communication-plans/", {"year": YEAR})
    created = client.post("/api/v1/communication-plans/", _body(), format="json")
    changed = client.patch(f"/api/v1/communication-plans/{plan.pk}/", {"goal": "改"}, format="json")
    due = client.get("/api/v1/communication-due/")

    assert listed.status_code == 200 and due.status_code == 200
    [row] = listed.json()["results"]
    assert row["class"] == "A" and row["lines"] == [{"channel": "visit", "minimum": 1, "period": "month", "note": ""}]
    if role in MANAGERS:
        assert created.status_code == 201, created.json()
        assert created.json()["class"] == "B" and len(created.json()["lines"]) == 2
        assert changed.status_code == 200 and changed.json()["goal"] == "改"
        assert AuditEntry.objects.filter(object_type="engagement.communicationplan", action="update",
                                         actor__username=role).exists()  # fmt: skip
    else:
        assert created.status_code == 403 and changed.status_code == 403
        assert CommunicationPlan.objects.count() == 1
        assert CommunicationPlan.objects.get().goal == "每月拜访"


@pytest.mark.parametrize(
    "change, field, message",
    [
        ({"year": 1999}, "year", "Enter a year from 2000 to"),
        ({"class": "E"}, "class", "Choose class A, B, C or D"),
        ({"class": "A"}, "class", f"There is already a plan for {YEAR} for these customers"),
        ({"goal": " "}, "goal", "Say what the plan's contacts are for."),
        ({"lines": []}, "lines", "A plan needs at least one line"),
        ({"institution_type": "department"}, "institution_type", "not a department"),
    ],
)
def test_wrong_input_is_refused_by_field_and_nothing_is_written(api_for, plan, change, field, message):
    response = api_for("manager").post("/api/v1/communication-plans/", _body(**change), format="json",
                                       HTTP_ACCEPT_LANGUAGE="en")  # fmt: skip

    assert response.status_code == 400
    assert message in str(response.json()[field]), response.json()
    assert CommunicationPlan.objects.count() == 1


@pytest.mark.parametrize("minimum", [0, -2, 400])
def test_a_lines_minimum_out_of_range_is_named_on_its_line(api_for, minimum):
    lines = [{"channel": "visit", "minimum": 1, "period": "month"}, {"channel": "phone", "minimum": minimum, "period": "month"}]

    response = api_for("manager", lang="zh-hans").post("/api/v1/communication-plans/", _body(lines=lines), format="json")

    assert response.status_code == 400
    errors = response.json()["lines"]
    assert errors[0] == {} and "minimum" in errors[1], errors
    assert "每个周期" in errors[1]["minimum"][0]  # in the reader's language
    assert not CommunicationPlan.objects.exists()


def test_the_due_list_through_the_api(api_for, users, xiehe, plan):
    from pharmacrm.keyaccounts import evaluation
    from pharmacrm.keyaccounts.models import Score

    Institution.objects.filter(pk=xiehe.pk).update(owner=users["rep"])
    Score.objects.create(institution=xiehe, kind="evaluation", period=f"{YEAR - 1}H2", as_of=dt.date(YEAR - 1, 12, 31),
                         model=evaluation.active_model("evaluation"), score=Decimal("90"), klass="A")  # fmt: skip
    plans.save_plan(users["manager"], {"year": YEAR, "klass": "A", "goal": "每年拜访",
                                       "lines": [{"channel": "visit", "minimum": 2, "period": "year"}]}, plan)  # fmt: skip

    [row] = api_for("rep").get("/api/v1/communication-due/", {"scope": "mine"}).json()["results"]

    assert row["institution"] == xiehe.pk and row["institution_name"] == "北京协和医院" and row["shortfall"] == 2
    assert row["lines"][0]["state"] == "due" and row["lines"][0]["count"] == 0
    refused = api_for("rep").get("/api/v1/communication-due/", {"scope": "all"}, HTTP_ACCEPT_LANGUAGE="en")
    assert refused.status_code == 400 and "Only managers" in str(refused.json()["scope"])
    assert api_for("manager").get("/api/v1/communication-due/", {"class": "E"}).status_code == 400
    assert api_for("manager").get("/api/v1/communication-due/", {"owner": users["rep"].pk}).json()["count"] == 1


@pytest.mark.parametrize("role", ROLES)
def test_every_role_reads_the_pages_and_only_managers_edit(client_for, plan, role):
    client = client_for(role)

    listing = client.get("/interactions/plans/", **EN)
    due = client.get("/interactions/plan-due/", **EN)
    edit = client.get(f"/interactions/plans/{plan.pk}/", **EN)
    posted = client.post("/interactions/plans/new/", _form(), **EN)

    assert listing.status_code == 200 and due.status_code == 200
    assert "Visit: 1 per month" in listing.content.decode()
    assert (f'href="/interactions/plans/{plan.pk}/"' in listing.content.decode()) == (role in MANAGERS)
    if role in MANAGERS:
        assert edit.status_code == 200 and posted.status_code == 302
        assert CommunicationPlan.objects.filter(klass="B").exists()
    else:
        assert edit.status_code == 403 and posted.status_code == 403
        assert not CommunicationPlan.objects.filter(klass="B").exists()
    assert "/interactions/plan-due/" in client.get("/interactions/", **EN).content.decode()


def test_the_form_names_the_wrong_field_and_keeps_the_input(client_for, plan):
    client = client_for("manager")

    duplicate = client.post("/interactions/plans/new/", _form(klass="A"), **EN)
    zero = client.post("/interactions/plans/new/", _form(**{"lines-0-minimum": "0"}), **EN)
    twice = client.post("/interactions/plans/new/", _form(**{"lines-1-channel": "visit", "lines-1-minimum": "2",
                                                            "lines-1-period": "quarter"}), **EN)  # fmt: skip

    assert duplicate.status_code == 400
    assert f"There is already a plan for {YEAR} for these customers" in duplicate.content.decode()
    assert zero.status_code == 400 and "Ask for at least one contact per period." in zero.content.decode()
    assert "This channel and period are already on another line of the plan." in twice.content.decode()
    assert CommunicationPlan.objects.count() == 1


def test_a_manager_changes_and_deletes_a_plan_audited(client_for, plan):
    client = client_for("manager")

    changed = client.post(f"/interactions/plans/{plan.pk}/", _form(klass="A", goal="每月两次拜访", version=str(plan.version),
                                                                   **{"lines-0-minimum": "2", "lines-0-period": "month"}))  # fmt: skip
    assert changed.status_code == 302
    entry = AuditEntry.objects.filter(object_type="engagement.communicationplan", action="update").latest("seq")
    assert entry.changes["goal"] == ["每月拜访", "每月两次拜访"]
    assert entry.changes["lines"] == [[{"channel": "visit", "minimum": 1, "period": "month"}],
                                      [{"channel": "visit", "minimum": 2, "period": "month"}]]
    # the audit page reads the lines in the reader's language, not as codes
    page = client_for("auditor").get("/accounts/audit/").content.decode()
    assert "渠道：拜访" in page and "'channel'" not in page

    shown = CommunicationPlan.objects.get(pk=plan.pk).version  # the delete button sends the version on its page
    assert client.post(f"/interactions/plans/{plan.pk}/delete/", {"version": shown}).status_code == 302
    assert not CommunicationPlan.objects.exists()
    assert AuditEntry.objects.filter(object_type="engagement.communicationplan", action="delete").exists()
