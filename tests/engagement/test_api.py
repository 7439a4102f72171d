"""/api/v1/interactions/: who may list, record and change interactions; the net flags what they say; the
case they raised shows its status to its author, never the patient."""

from __future__ import annotations

import pytest
from django.utils import timezone

from pharmacrm.engagement import services
from pharmacrm.engagement.models import Interaction
from pharmacrm.safety import services as safety
from pharmacrm.safety.choices import SignalStatus
from pharmacrm.safety.models import Flag
from tests.api.conftest import ROLES
from tests.concurrency import held_while

RECORDERS = {"admin", "manager", "kam", "agent", "expert", "support", "aftersales", "rep"}


def body(institution, **extra) -> dict:
    return {"institution": institution.pk, "channel": "wechat", "subject": "微信咨询", "notes": "", **extra}


@pytest.mark.parametrize("role", ROLES)
def test_every_role_lists_interactions_and_the_recording_roles_create_them(api_for, xiehe, role):
    client = api_for(role)

    created = client.post("/api/v1/interactions/", body(xiehe), format="json")
    listed = client.get("/api/v1/interactions/")

    assert listed.status_code == 200
    if role in RECORDERS:
        assert created.status_code == 201, created.json()
        assert [i["id"] for i in listed.json()["results"]] == [created.json()["id"]]
    else:
        assert created.status_code == 403
        assert not Interaction.objects.exists()


@pytest.mark.parametrize("role", ROLES)
def test_an_interaction_outside_the_callers_scope_is_not_found(api_for, users, ruijin, role):
    interaction = services.record_interaction(users["agent"], {**body(ruijin), "institution": ruijin})

    response = api_for(role).get(f"/api/v1/interactions/{interaction.pk}/")

    assert response.status_code == (404 if role == "rep" else 200)


def test_unauthenticated_calls_are_refused(anon, db):
    assert anon.get("/api/v1/interactions/").status_code == 401


def test_a_reaction_in_the_notes_flags_the_interaction_for_pv(api_for, xiehe):
    response = api_for("kam").post(
        "/api/v1/interactions/", body(xiehe, notes="客户反映用药后出现皮疹和瘙痒"), format="json"
    )

    data = response.json()
    assert data["flagged"] is True and data["flag_status"] == SignalStatus.PENDING
    assert Flag.objects.get(interaction_id=data["id"]).status == SignalStatus.PENDING
    pv_view = api_for("pv").get(f"/api/v1/safety/flags/?interaction={data['id']}").json()["results"]
    assert [f["status"] for f in pv_view] == [SignalStatus.PENDING]


def test_a_negated_reaction_raises_no_flag(api_for, xiehe):
    response = api_for("kam").post(
        "/api/v1/interactions/", body(xiehe, notes="用了两周，没有不良反应"), format="json"
    )

    assert response.json()["flagged"] is False and not Flag.objects.exists()


def test_staff_may_flag_it_by_hand(api_for, xiehe):
    response = api_for("agent").post(
        "/api/v1/interactions/", body(xiehe, safety_relevant=True), format="json"
    )

    assert response.json()["flag_status"] == SignalStatus.PENDING


def test_a_future_time_is_refused_on_the_field(api_for, xiehe):
    later = (timezone.now() + timezone.timedelta(days=1)).isoformat()
    response = api_for("agent").post("/api/v1/interactions/", body(xiehe, received_at=later), format="json")

    assert response.status_code == 400 and "received_at" in response.json()


def test_a_change_needs_the_version_and_a_stale_one_conflicts(api_for, xiehe):
    client = api_for("rep")
    created = client.post("/api/v1/interactions/", body(xiehe), format="json").json()
    url = f"/api/v1/interactions/{created['id']}/"

    without = client.patch(url, {"subject": "改"}, format="json")
    stale = client.patch(url, {"subject": "改", "version": created["version"] + 1}, format="json")
    current = client.patch(url, {"subject": "改"}, format="json", HTTP_IF_MATCH=f'"{created["version"]}"')

    assert without.status_code == 400 and "version" in without.json()
    assert stale.status_code == 409
    assert current.status_code == 200 and current.json()["subject"] == "改" and current.json()["version"] == 2


def test_emptying_the_hospital_of_a_doctors_visit_files_it_under_the_doctors_hospital_as_when_recorded(
    api_for, client_for, xiehe
):
    client = api_for("rep")
    doctor = xiehe.people.get(name="张伟")
    made = client.post("/api/v1/interactions/", {**body(xiehe), "person": doctor.pk}, format="json").json()

    answer = client.patch(f"/api/v1/interactions/{made['id']}/", {"institution": None, "version": 1}, format="json")

    assert answer.status_code == 200 and answer.json()["institution"] == xiehe.pk
    hospital_page = client_for("kam").get(f"/interactions/?embed=1&institution={xiehe.pk}").content.decode()
    assert "微信咨询" in hospital_page  # still on the hospital's Customer 360 page


def test_only_the_author_or_a_role_seeing_every_customer_changes_it(api_for, users, xiehe):
    interaction = services.record_interaction(users["agent"], {**body(xiehe), "institution": xiehe})

    by_rep = api_for("rep").patch(
        f"/api/v1/interactions/{interaction.pk}/", {"subject": "x", "version": 1}, format="json"
    )
    by_auditor = api_for("auditor").patch(
        f"/api/v1/interactions/{interaction.pk}/", {"subject": "x", "version": 1}, format="json"
    )

    assert (by_rep.status_code, by_auditor.status_code) == (403, 403)
    assert Interaction.objects.get().subject == "微信咨询"


def test_the_author_sees_the_case_status_and_others_do_not(api_for, users, xiehe):
    interaction = services.record_interaction(
        users["rep"], {**body(xiehe), "institution": xiehe, "notes": "患者服药后呼吸困难住院"}
    )
    case = safety.confirm_flag(
        users["pv"], Flag.objects.get(interaction=interaction), data={"patient_name": "刘某某"}
    )

    author = api_for("rep").get(f"/api/v1/interactions/{interaction.pk}/")
    colleague = api_for("kam").get(f"/api/v1/interactions/{interaction.pk}/").json()
    manager = api_for("manager").get(f"/api/v1/interactions/{interaction.pk}/").json()

    assert author.json()["cases"] == [
        {"number": case.number, "status": "new", "status_label": author.json()["cases"][0]["status_label"]}
    ]
    assert "刘某某" not in author.content.decode()
    assert colleague["cases"] == [] and colleague["flag_status"] == SignalStatus.CONFIRMED
    assert [c["number"] for c in manager["cases"]] == [case.number]


def test_the_list_filters_mine_and_channel(api_for, users, xiehe):
    services.record_interaction(users["agent"], {**body(xiehe), "institution": xiehe, "channel": "phone"})
    services.record_interaction(users["kam"], {**body(xiehe), "institution": xiehe})

    client = api_for("agent")
    mine = client.get("/api/v1/interactions/?mine=true").json()["results"]
    wechat = client.get("/api/v1/interactions/?channel=wechat").json()["results"]

    assert [i["created_by"] for i in mine] == [users["agent"].pk]
    assert [i["created_by"] for i in wechat] == [users["kam"].pk]


def test_a_hospitals_interactions_include_those_filed_under_its_departments_as_on_its_page(
    api_for, client_for, users, xiehe, ruijin
):
    from pharmacrm.customers.models import Institution

    cardiology = Institution.objects.get(parent=xiehe, name="心内科")
    services.record_interaction(users["kam"], {**body(xiehe), "institution": xiehe, "subject": "医院拜访"})
    services.record_interaction(
        users["kam"], {**body(xiehe), "institution": cardiology, "subject": "心内科拜访"}
    )
    services.record_interaction(users["kam"], {**body(ruijin), "institution": ruijin, "subject": "瑞金拜访"})

    listed = api_for("kam").get(f"/api/v1/interactions/?institution={xiehe.pk}").json()["results"]
    department = api_for("kam").get(f"/api/v1/interactions/?institution={cardiology.pk}").json()["results"]
    page = client_for("kam").get(f"/interactions/?institution={xiehe.pk}").content.decode()

    assert sorted(i["subject"] for i in listed) == ["医院拜访", "心内科拜访"]
    assert "医院拜访" in page and "心内科拜访" in page  # the page and the app list the same visits
    assert [i["subject"] for i in department] == ["心内科拜访"]


def test_the_list_reads_the_database_a_fixed_number_of_times(
    api_for, users, xiehe, django_assert_max_num_queries
):
    for i in range(10):
        services.record_interaction(
            users["agent"], {**body(xiehe), "institution": xiehe, "subject": f"微信咨询{i}", "notes": "皮疹" * (i % 2)}
        )  # distinct: the same one again within minutes is a resend, recorded once
    client = api_for("agent")
    with django_assert_max_num_queries(10):
        response = client.get("/api/v1/interactions/")
    assert response.json()["count"] == 10


@pytest.mark.postgresql
@pytest.mark.django_db(transaction=True)
def test_an_interaction_recorded_while_its_person_is_merged_away_is_refused_not_filed_under_the_copy(
    api_for, users, xiehe
):
    """The rep records a call with the copy of 张伟 while a manager merges the copy into his record: the call
    waited for the merge and was then filed under the merged record, which no list shows. Now it is refused with
    the survivor named, as when the copy is chosen after the merge."""
    from pharmacrm.customers import services as customers
    from pharmacrm.customers.models import Person

    original = Person.objects.get(name="张伟")
    copy = customers.create_person(
        users["manager"], {"name": "张伟", "institution": xiehe, "mobile": "13900139000"}
    )
    rep, answers = api_for("rep"), []

    def record():
        answers.append(rep.post("/api/v1/interactions/", body(xiehe, person=copy.pk), format="json"))

    held_while(lambda: customers.merge(users["manager"], original, Person.objects.get(pk=copy.pk)), record)
    assert answers[0].status_code == 400
    assert answers[0].json()["person"] == [
        f"张伟 ({copy.code}) was merged into 张伟 ({original.code}): choose {original.code} instead."]
    assert not Interaction.objects.filter(person=copy).exists()
