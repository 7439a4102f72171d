"""Interaction pages: who may list, record and change them; the net flags a reaction mentioned in the notes;
the page says so, and shows the case's status to its author — never the patient."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from pharmacrm.core.roles import Role
from pharmacrm.engagement import services
from pharmacrm.engagement.models import Interaction
from pharmacrm.safety import services as safety
from pharmacrm.safety.choices import SignalStatus
from pharmacrm.safety.models import Flag
from tests.concurrency import held_while

ROLES = [r.value for r in Role]
RECORDERS = {"admin", "manager", "kam", "agent", "expert", "support", "aftersales", "rep"}


def record(user, institution, notes="", **extra) -> Interaction:
    data = {"institution": institution, "channel": "visit", "subject": "科室拜访", "notes": notes,
            "received_at": timezone.now() - dt.timedelta(hours=2), **extra}  # fmt: skip
    return services.record_interaction(user, data)


def _form(institution, **extra) -> dict:
    local = timezone.localtime(timezone.now() - dt.timedelta(hours=1))
    return {"institution": institution.pk, "channel": "phone", "received_at": local.strftime("%Y-%m-%dT%H:%M"),
            "subject": "电话回访", "notes": "", **extra}  # fmt: skip


@pytest.mark.parametrize("role", ROLES)
def test_everyone_lists_the_interactions_they_may_see(client_for, users, xiehe, role):
    record(users["agent"], xiehe, subject="协和回访")

    response = client_for(role).get("/interactions/")

    assert response.status_code == 200
    assert "协和回访" in response.content.decode()


@pytest.mark.parametrize("role", ROLES)
def test_the_roles_that_record_interactions_get_the_form(client_for, role, db):
    response = client_for(role).get("/interactions/new/")

    assert response.status_code == (200 if role in RECORDERS else 403)


@pytest.mark.parametrize("role", ROLES)
def test_an_interaction_page_is_shown_to_those_who_see_its_customer(client_for, users, ruijin, role):
    interaction = record(users["agent"], ruijin)  # Shanghai: outside the rep's territory

    response = client_for(role).get(f"/interactions/{interaction.pk}/")

    assert response.status_code == (404 if role == "rep" else 200)


def test_a_rep_sees_the_interactions_of_the_customers_in_the_territory_only(client_for, users, xiehe, ruijin):
    record(users["agent"], xiehe, subject="北京拜访")
    record(users["agent"], ruijin, subject="上海拜访")

    page = client_for("rep").get("/interactions/").content.decode()

    assert "北京拜访" in page and "上海拜访" not in page


def test_recording_a_visit_that_mentions_a_rash_tells_pharmacovigilance(client_for, xiehe):
    client = client_for("rep")

    person = xiehe.people.get(name="张伟")
    form = _form(xiehe, person=person.pk, notes="张主任说有患者用药后出现皮疹")
    response = client.post("/interactions/new/", form, follow=True)

    interaction = Interaction.objects.get()
    assert response.redirect_chain[-1][0] == f"/interactions/{interaction.pk}/"
    assert Flag.objects.get(interaction=interaction).status == SignalStatus.PENDING
    assert interaction.person == person
    page = response.content.decode()
    assert 'data-flag="pending"' in page and f'href="/customers/people/{person.pk}/"' in page


def test_day_zero_is_the_time_entered_not_the_time_saved(client_for, xiehe):
    form = _form(xiehe, notes="病人说吃药后恶心呕吐")
    client_for("kam").post("/interactions/new/", form)

    interaction = Interaction.objects.get()
    assert timezone.localtime(interaction.received_at).strftime("%Y-%m-%dT%H:%M") == form["received_at"]
    assert Flag.objects.get(interaction=interaction).received_at == interaction.received_at


def test_a_form_without_a_customer_is_refused_on_the_field(client_for, xiehe):
    form = _form(xiehe)
    form["institution"] = ""

    response = client_for("agent").post("/interactions/new/", form)

    assert response.status_code == 400
    assert not Interaction.objects.exists()
    assert 'id="field-institution"' in response.content.decode()


def test_choosing_an_institution_offers_its_people(client_for, xiehe):
    response = client_for("agent").get(f"/interactions/new/?_options=person&institution={xiehe.pk}")

    assert "张伟" in response.content.decode()


def test_the_author_sees_the_case_status_but_not_the_patient(client_for, users, xiehe):
    interaction = record(users["rep"], xiehe, notes="患者用药后出现皮疹")
    flag = Flag.objects.get(interaction=interaction)
    case = safety.confirm_flag(users["pv"], flag, data={"patient_name": "刘某某"})

    author = client_for("rep").get(f"/interactions/{interaction.pk}/").content.decode()
    colleague = client_for("expert").get(f"/interactions/{interaction.pk}/").content.decode()

    assert case.number in author and 'data-status="new"' in author
    assert "刘某某" not in author
    assert case.number not in colleague  # not the author, not overseeing safety


def test_the_author_changes_the_interaction_with_the_version_loaded(client_for, users, xiehe):
    interaction = record(users["rep"], xiehe)
    client = client_for("rep")

    stale = client.post(
        f"/interactions/{interaction.pk}/", _form(xiehe, subject="改过", version=interaction.version + 3)
    )
    unchanged = Interaction.objects.get(pk=interaction.pk).subject
    saved = client.post(
        f"/interactions/{interaction.pk}/", _form(xiehe, subject="改过", version=interaction.version)
    )

    assert stale.status_code == 409 and unchanged == "科室拜访"
    assert saved.status_code == 302
    interaction.refresh_from_db()
    assert interaction.subject == "改过" and interaction.version == 2


def test_the_edit_form_sent_twice_saves_once_and_does_not_claim_someone_else_changed_it(
    client_for, users, xiehe
):
    interaction = record(users["rep"], xiehe)
    client = client_for("rep")
    form = _form(xiehe, subject="改过", notes="主任同意试用", version=interaction.version)

    first = client.post(f"/interactions/{interaction.pk}/", form)
    again = client.post(f"/interactions/{interaction.pk}/", form)  # a double tap on Save on a weak signal

    assert first.status_code == 302 and again.status_code == 302
    interaction.refresh_from_db()
    assert interaction.subject == "改过" and interaction.version == 2
    # a stale form with other words is still a conflict: the first save is not overwritten
    other = client.post(f"/interactions/{interaction.pk}/", {**form, "notes": "主任不同意"})
    assert other.status_code == 409
    interaction.refresh_from_db()
    assert interaction.notes == "主任同意试用"


def test_an_edit_that_adds_a_reaction_flags_the_interaction(client_for, users, xiehe):
    interaction = record(users["rep"], xiehe, notes="介绍新剂型")

    client_for("rep").post(
        f"/interactions/{interaction.pk}/",
        _form(xiehe, notes="回访时说用药后心悸", version=interaction.version),
    )

    assert Flag.objects.filter(interaction=interaction, status=SignalStatus.PENDING).exists()


def test_only_the_author_or_a_role_seeing_every_customer_may_change_it(client_for, users, xiehe):
    interaction = record(users["agent"], xiehe)

    page = client_for("rep").get(f"/interactions/{interaction.pk}/").content.decode()
    post = client_for("rep").post(
        f"/interactions/{interaction.pk}/", _form(xiehe, version=interaction.version)
    )

    assert 'id="interaction-form"' not in page
    assert post.status_code == 403
    assert (
        'id="interaction-form"' in client_for("kam").get(f"/interactions/{interaction.pk}/").content.decode()
    )


def test_the_list_filters_mine_and_channel(client_for, users, xiehe):
    record(users["agent"], xiehe, subject="我的电话", channel="phone")
    record(users["kam"], xiehe, subject="别人的拜访")

    client = client_for("agent")
    mine = client.get("/interactions/?mine=on").content.decode()
    visits = client.get("/interactions/?channel=visit").content.decode()

    assert "我的电话" in mine and "别人的拜访" not in mine
    assert "别人的拜访" in visits and "我的电话" not in visits


def test_the_list_reads_the_database_a_fixed_number_of_times(
    client_for, users, xiehe, django_assert_max_num_queries
):
    for i in range(12):
        record(users["agent"], xiehe, subject=f"拜访 {i}", notes="皮疹" if i % 2 else "")
    client = client_for("agent")
    client.get("/interactions/")  # warm the session and caches

    with django_assert_max_num_queries(10):
        response = client.get("/interactions/")
    assert response.content.decode().count('class="interaction-row"') == 12


def test_the_customer_360_block_lists_that_customers_interactions(client_for, users, xiehe, ruijin):
    record(users["agent"], xiehe, subject="协和拜访", notes="患者说用药后头晕")
    record(users["agent"], ruijin, subject="瑞金拜访")

    block = client_for("kam").get(f"/interactions/?embed=1&institution={xiehe.pk}").content.decode()
    outside = client_for("rep").get(f"/interactions/?embed=1&institution={ruijin.pk}").content.decode()

    assert "协和拜访" in block and "瑞金拜访" not in block and 'data-flag="pending"' in block
    assert f"/interactions/new/?institution={xiehe.pk}" in block
    assert "瑞金拜访" not in outside


@pytest.mark.postgresql
@pytest.mark.django_db(transaction=True)
def test_an_interaction_moved_to_a_person_being_merged_away_is_refused_not_filed_under_the_copy(
    client_for, users, xiehe
):
    """The rep corrects a visit to name the copy of 张伟 while a manager merges the copy into his record: the visit
    waited for the merge and was then filed under the merged record, which no list shows."""
    from pharmacrm.customers import services as customers
    from pharmacrm.customers.models import Person

    original = Person.objects.get(name="张伟")
    copy = customers.create_person(
        users["manager"], {"name": "张伟", "institution": xiehe, "mobile": "13900139000"}
    )
    interaction = record(users["rep"], xiehe)
    rep, answers = client_for("rep"), []

    def edit():
        form = _form(xiehe, person=copy.pk, version=interaction.version)
        answers.append(rep.post(f"/interactions/{interaction.pk}/", form, HTTP_ACCEPT_LANGUAGE="en"))

    held_while(lambda: customers.merge(users["manager"], original, Person.objects.get(pk=copy.pk)), edit)
    assert answers[0].status_code == 400
    assert f"张伟 ({copy.code}) was merged into 张伟 ({original.code}): choose {original.code} instead." in (
        answers[0].content.decode())  # fmt: skip
    interaction.refresh_from_db()
    assert interaction.person_id is None and interaction.version == 1


def test_pages_that_are_read_or_posted_refuse_put_patch_and_delete(client_for, users, xiehe):
    """The home page, the audit viewer and an interaction's page answered PUT, PATCH and DELETE with the page (200):
    a client or a scanner took the method as accepted. They now answer 405, as every other page does."""
    interaction = record(users["agent"], xiehe)
    admin = client_for("admin")
    for path in ("/", "/accounts/audit/", f"/interactions/{interaction.pk}/"):
        for method in (admin.put, admin.patch, admin.delete):
            assert method(path).status_code == 405, (method.__name__, path)
        assert admin.get(path).status_code == 200, path
