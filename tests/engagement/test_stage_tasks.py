"""The customer lifecycle's stage tasks (seed 000 §6.4): entering a stage — by the edit form, the API, an import, an
opportunity — gives the customer's owner that stage's playbook actions with due dates on working days; leaving the
stage closes them; entering it again soon does not duplicate them; a merge closes the merged-away record's."""

from __future__ import annotations

import datetime as dt

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from pharmacrm.customers import services as customers
from pharmacrm.customers.models import Institution, Person
from pharmacrm.engagement import playbook
from pharmacrm.engagement.models import StageAction, StageSpell, StageTask
from pharmacrm.engagement.models import StageTaskStatus as TS

pytestmark = pytest.mark.django_db

EN = {"HTTP_ACCEPT_LANGUAGE": "en"}


def _hospital(user, name="北京天坛医院", **values):
    from pharmacrm.core.models import Region

    region = Region.objects.get(code="110105")
    return customers.create_institution(user, {"name": name, "kind": "hospital", "region": region, **values})


def _tasks(inst, **where):
    return list(StageTask.objects.filter(institution=inst, **where).order_by("action__position", "id"))


def _edit(user, obj, **values):
    obj = type(obj).objects.get(pk=obj.pk)
    return customers.update_institution(user, obj, values, obj.version)


def test_a_new_customer_with_an_owner_gets_the_potential_stage_actions(users):
    inst = _hospital(users["rep"])  # a rep's new customer is theirs

    tasks = _tasks(inst)
    playbook_titles = [a.label for a in StageAction.objects.filter(stage="potential", active=True)]
    assert [t.action.label for t in tasks] == playbook_titles and len(tasks) == 2
    assert {t.owner_id for t in tasks} == {users["rep"].pk}
    assert all(t.status == TS.OPEN and t.due_on > timezone.localdate() for t in tasks)
    assert StageSpell.objects.get(institution=inst, left_at=None).stage == "potential"


def test_a_customer_without_an_owner_gets_none(users):
    inst = _hospital(users["manager"])

    assert _tasks(inst) == []
    assert playbook.without_owner()["potential"] >= 1


def test_moving_on_closes_the_old_stage_tasks_and_gives_the_new_ones(users):
    rep = users["rep"]
    inst = _hospital(rep)

    _edit(rep, inst, stage="intent")

    assert {t.status for t in _tasks(inst, stage="potential")} == {TS.LEFT}
    assert [t.status for t in _tasks(inst, stage="intent")] == [TS.OPEN, TS.OPEN]
    spells = list(StageSpell.objects.filter(institution=inst).order_by("entered_at", "id").values_list("stage", "left_at"))
    assert spells[0][0] == "potential" and spells[0][1] is not None and spells[1] == ("intent", None)


def test_coming_back_to_a_stage_soon_reopens_its_tasks_rather_than_adding_more(users):
    rep = users["rep"]
    inst = _hospital(rep)
    _edit(rep, inst, stage="intent")
    _edit(rep, inst, stage="potential")

    potential = _tasks(inst, stage="potential")
    assert len(potential) == 2 and {t.status for t in potential} == {TS.OPEN}
    assert {t.status for t in _tasks(inst, stage="intent")} == {TS.LEFT}


def test_coming_back_after_the_reentry_window_gives_new_tasks(users, settings):
    rep = users["rep"]
    inst = _hospital(rep)
    _edit(rep, inst, stage="intent")
    StageTask.objects.filter(institution=inst).update(created_at=timezone.now() - dt.timedelta(days=31))
    _edit(rep, inst, stage="potential")

    assert len(_tasks(inst, stage="potential", status=TS.OPEN)) == 2
    assert len(_tasks(inst, stage="potential", status=TS.LEFT)) == 2


def test_an_opportunity_moves_the_customer_on_and_gives_the_decision_tasks(users):
    from pharmacrm.sales import pipeline

    rep = users["rep"]
    inst = _hospital(rep)
    pipeline.create(rep, {"title": "院内采购", "institution": inst, "amount_fen": 1_000_000,
                          "close_date": timezone.localdate() + dt.timedelta(days=30)},
                    stage=pipeline.S.PROPOSAL)  # fmt: skip

    assert Institution.objects.get(pk=inst.pk).stage == "decision"
    assert len(_tasks(inst, stage="decision", status=TS.OPEN)) == 2
    assert {t.status for t in _tasks(inst, stage="potential")} == {TS.LEFT}


def test_the_api_and_the_form_are_the_same_path(users, client_for, api_for):
    rep = users["rep"]
    inst = _hospital(rep)
    response = api_for("rep").patch(f"/api/v1/institutions/{inst.pk}/", {"stage": "active", "version": 1},
                                    format="json")  # fmt: skip
    assert response.status_code == 200, response.content
    assert len(_tasks(inst, stage="active", status=TS.OPEN)) == 3

    person = customers.create_person(rep, {"name": "李娜", "institution": inst})
    client = client_for("rep")
    page = client.get(f"/customers/people/{person.pk}/edit/", **EN)
    assert page.status_code == 200
    form = page.context["form"]
    data = {k: v for k, v in form.initial.items() if v is not None}
    data.update(stage="churned", version=Person.objects.get(pk=person.pk).version, tags="")
    response = client.post(f"/customers/people/{person.pk}/edit/", data, **EN)
    assert response.status_code == 302, response.content.decode()[:3000]
    churned = StageTask.objects.filter(person=person, stage="churned", status=TS.OPEN)
    assert churned.count() == 3  # the win-back sequence: revisit, survey, win-back visit


def test_the_win_back_visit_goes_to_the_team_lead(users, team_north):
    team_north.lead = users["manager"]
    team_north.save()
    inst = _hospital(users["rep"], team=team_north)
    _edit(users["rep"], inst, stage="churned")

    winback = StageTask.objects.get(institution=inst, stage="churned", action__preset="churned.winback")
    assert winback.owner_id == users["manager"].pk
    assert StageTask.objects.get(institution=inst, action__preset="churned.survey").owner_id == users["rep"].pk


def test_a_merge_closes_the_merged_away_records_tasks(users):
    rep, manager = users["rep"], users["manager"]
    survivor = _hospital(rep)
    duplicate = _hospital(rep, name="天坛医院")
    customers.merge(manager, Institution.objects.get(pk=survivor.pk), Institution.objects.get(pk=duplicate.pk))

    assert {t.status for t in _tasks(duplicate)} == {TS.LEFT}
    assert {t.status for t in _tasks(survivor)} == {TS.OPEN}
    assert not StageSpell.objects.filter(institution=duplicate, left_at=None).exists()


# --- working days ---------------------------------------------------------------------------------------------


def test_due_dates_skip_the_national_day_holiday_and_count_the_swapped_working_days():
    # 2026: 1–7 October off (国庆 and 中秋), Saturday 10 October a working day (调休)
    assert playbook.due_date(dt.date(2026, 9, 30), 1) == dt.date(2026, 10, 8)
    assert playbook.due_date(dt.date(2026, 9, 30), 3) == dt.date(2026, 10, 10)
    assert playbook.due_date(dt.date(2026, 10, 3), 0) == dt.date(2026, 10, 8)


def test_a_year_the_calendar_does_not_know_is_refused_by_name():
    with pytest.raises(ValidationError) as caught:
        playbook.due_date(dt.date(2026, 12, 28), 5)
    assert "2027" in str(caught.value.message_dict["stage"])


def test_a_due_date_in_a_year_the_calendar_lacks_is_provisional_until_an_administrator_enters_the_year(
    users, client_for, api_for
):
    """As the SLA clocks: a stage task due in 2027 (the chinese-calendar package stops at 2026) is dated on the weekly
    pattern less the days the law fixes, marked provisional on the list, the Customer 360 block and the API, and
    dated again for good when an administrator enters the year's holidays (`pharmacrm holidays`, the settings page)."""
    from pharmacrm.core.models import AuditEntry
    from pharmacrm.servicedesk import calendars
    from pharmacrm.servicedesk.models import BusinessCalendar

    rep = users["rep"]
    inst = _hospital(rep)
    StageAction.objects.filter(stage="intent", position=1).update(due_days=60)  # from December 2026: into 2027

    _edit(rep, inst, stage="intent")  # the stage change itself is saved

    long, short = _tasks(inst, stage="intent")
    assert long.due_on is not None and long.due_on.year == 2027 and long.due_provisional
    assert short.due_on is not None and not short.due_provisional
    listing = client_for("rep").get("/interactions/stage-tasks/", **EN).content.decode()
    assert listing.count('class="small provisional" data-uncovered="2027"') == 1
    block = client_for("rep").get(f"/interactions/stage-tasks/customer/?institution={inst.pk}", **EN).content.decode()
    assert 'data-uncovered="2027"' in block and "official holidays of 2027 are not entered yet" in block
    api = api_for("rep").get(f"/api/v1/engagement/stage-tasks/{long.pk}/").json()
    assert api["due_on"] == long.due_on.isoformat() and api["due_provisional"] is True
    assert playbook.redate_provisional() == 0  # the year still unknown: nothing moves

    calendar = BusinessCalendar.objects.get(code="business")
    spring = [dt.date(2027, 2, 5) + dt.timedelta(days=n) for n in range(9)]  # 除夕 to the ninth day
    calendars.set_overrides(users["admin"], calendar, spring, False, "2027 春节")
    assert StageTask.objects.get(pk=long.pk).due_provisional  # National Day still missing: the year is not known
    national = [dt.date(2027, 10, 1) + dt.timedelta(days=n) for n in range(7)]
    calendars.set_overrides(users["admin"], calendar, national, False, "2027 国庆")

    long.refresh_from_db()
    assert not long.due_provisional
    assert long.due_on == playbook.due_date(timezone.localdate(long.created_at), 60)  # the Spring Festival week off
    entry = AuditEntry.objects.filter(object_type="engagement.stagetask", actor=users["admin"]).latest("pk")
    assert entry.extra["redated"] == 1 and entry.extra["provisional"] == 0
    listing = client_for("rep").get("/interactions/stage-tasks/", **EN).content.decode()
    assert 'class="small provisional"' not in listing


# --- the owner changes ----------------------------------------------------------------------------------------


def test_an_owner_change_moves_the_open_stage_tasks_and_tells_the_new_owner_once(users, api_for, tmp_path):
    """Form, API and import: the customer's open tasks follow its new owner (one audit entry, one notification with
    how many); a task done, skipped or closed keeps the owner who had it."""
    from pharmacrm.core.models import AuditEntry
    from pharmacrm.customers import importer
    from pharmacrm.notify.models import Notification

    rep, kam = users["rep"], users["kam"]
    inst = _hospital(rep)
    _edit(rep, inst, stage="intent")  # the potential tasks closed (stage left), two intent tasks open
    skipped, still = _tasks(inst, stage="intent")
    playbook.skip(rep, skipped, reason="客户近期不便接待")

    version = Institution.objects.get(pk=inst.pk).version
    response = api_for("manager").patch(f"/api/v1/institutions/{inst.pk}/", {"owner": kam.pk, "version": version},
                                        format="json")  # fmt: skip
    assert response.status_code == 200, response.content

    owners = {t.pk: (t.status, t.owner_id) for t in _tasks(inst)}
    assert owners[still.pk] == (TS.OPEN, kam.pk) and owners[skipped.pk] == (TS.SKIPPED, rep.pk)
    assert {o for s, o in owners.values() if s == TS.LEFT} == {rep.pk}
    told = list(Notification.objects.filter(recipient=kam, kind=playbook.MOVED_KIND))
    assert len(told) == 1 and "1" in told[0].title
    entry = AuditEntry.objects.filter(object_type="engagement.stagetask", actor=users["manager"]).latest("pk")
    assert entry.extra["moved"] == 1 and entry.extra["owner"] == [rep.pk, kam.pk]

    path = tmp_path / "owners.csv"
    for owner in ("rep", "kam"):  # a new customer of the rep's, then the same row with the KAM as its owner
        path.write_text(f"机构名称,机构类型,行政区划代码,生命周期阶段,负责人,外部编号\n北京垂杨柳医院,医院,110105,意向客户,{owner},H-9\n",
                        encoding="utf-8")  # fmt: skip
        job = importer.import_file(path, "institutions", users["manager"], mode="all")
        assert job.status == "done", job.message
    imported = Institution.objects.get(external_id="H-9")
    assert {t.owner_id for t in _tasks(imported, status=TS.OPEN)} == {kam.pk} and len(_tasks(imported)) == 2
    told = list(Notification.objects.filter(recipient=kam, kind=playbook.MOVED_KIND).order_by("pk"))
    assert len(told) == 2 and "2" in told[1].title
