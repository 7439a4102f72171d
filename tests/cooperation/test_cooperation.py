"""Cooperation agreements and projects (合作协议与合作项目, seed 002 §五): numbering per year and under two creations
at once, term and amount validation naming the field, the signed copy's checks, reminders sent once, acceptance and
settlement deciding when a project closes, a stale edit refused, who sees and runs what on the pages and the API,
the pages in each language — on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import io
from decimal import Decimal

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import transaction
from django.utils import timezone, translation

from pharmacrm.cooperation import services
from pharmacrm.cooperation.models import Agreement, AgreementStatus, ProjectStatus, SettlementStatus, Task
from pharmacrm.core.models import AuditEntry
from pharmacrm.customers.services import ConflictError
from pharmacrm.notify.models import Notification
from tests.keyaccounts.programme_fixtures import tiny_pdf, tiny_png

TODAY = timezone.localdate


def pdf(name="签署版.pdf"):
    return SimpleUploadedFile(name, tiny_pdf(), content_type="application/pdf")


def data(institution, owner, **extra):
    today = TODAY()
    return {"institution": institution.pk, "kind": "academic", "title": "心内科学术合作", "company_signer": "王总",
            "customer_signer": "李院长", "start_date": today - dt.timedelta(days=30),
            "end_date": today + dt.timedelta(days=335), "amount": "120000.00", "terms": "双方权利义务……",
            "payment_terms": "验收后30日内付款", "owner": owner.pk, **extra}  # fmt: skip


@pytest.fixture
def world(users, xiehe, ruijin, team_north):
    """北京协和医院 (owned by the rep's North team) with an agreement the rep looks after; 瑞金医院 with one the key-account
    manager looks after."""
    xiehe.owner, xiehe.team = users["rep"], team_north
    xiehe.save(update_fields=["owner", "team"])
    ours = services.create_agreement(users["rep"], data(xiehe, users["rep"], team=team_north.pk))
    theirs = services.create_agreement(users["kam"], data(ruijin, users["kam"], title="临床研究合作", kind="clinical"))
    return {"ours": ours, "theirs": theirs, "xiehe": xiehe, "ruijin": ruijin}


def in_force(user, agreement):
    services.record_signed(user, agreement, signed_date=TODAY(), upload=pdf(), version=agreement.version)
    return services.put_in_force(user, agreement, agreement.version)


def running_project(user, agreement, **extra):
    project = services.create_project(user, agreement, {
        "title": "学术会议", "goal": "举办两场学术会议", "responsible": user.pk, "start_date": agreement.start_date,
        "end_date": agreement.end_date, "budget": "50000", **extra})  # fmt: skip
    return services.start_project(user, project, project.version)


# --- numbering ---------------------------------------------------------------------------------------------


def test_numbers_run_per_year_without_gaps_even_after_a_failed_creation(world, users, xiehe):
    year = TODAY().year
    assert [world["ours"].number, world["theirs"].number] == [f"HZ-{year}-0001", f"HZ-{year}-0002"]
    with pytest.raises(RuntimeError), transaction.atomic():
        services.create_agreement(users["rep"], data(xiehe, users["rep"]))
        raise RuntimeError("the request failed after the agreement was written")
    assert services.create_agreement(users["rep"], data(xiehe, users["rep"])).number == f"HZ-{year}-0003"
    next_year = timezone.make_aware(dt.datetime(year + 1, 1, 1, 0, 5))  # Beijing's new year
    with transaction.atomic():
        assert services._number(next_year) == f"HZ-{year + 1}-0001"


@pytest.mark.postgresql
@pytest.mark.django_db(transaction=True)
def test_two_agreements_recorded_at_once_get_consecutive_numbers(users, xiehe):
    from tests.concurrency import held_while

    out = []

    def second():
        try:
            out.append(services.create_agreement(users["admin"], data(xiehe, users["admin"])).number)
        except Exception as e:  # noqa: BLE001 (what the test reports)
            out.append(repr(e))

    held_while(lambda: services.create_agreement(users["manager"], data(xiehe, users["manager"])), second)
    year = TODAY().year
    assert out == [f"HZ-{year}-0002"]
    assert sorted(Agreement.objects.values_list("number", flat=True)) == [f"HZ-{year}-0001", f"HZ-{year}-0002"]


# --- validation --------------------------------------------------------------------------------------------


def test_an_end_before_the_start_is_refused_under_the_end_and_nothing_is_written(users, xiehe):
    bad = data(xiehe, users["rep"], end_date=TODAY() - dt.timedelta(days=60), amount="-5")
    with pytest.raises(ValidationError) as e:
        services.create_agreement(users["manager"], bad)
    assert "end_date" in e.value.message_dict and "amount" in e.value.message_dict
    assert not Agreement.objects.exists()


def test_the_form_shows_the_term_error_under_the_end_field_in_the_readers_language(users, xiehe, client_for):
    form = {k: str(v) for k, v in data(xiehe, users["manager"], end_date=TODAY() - dt.timedelta(days=90)).items()}
    r = client_for("manager").post("/cooperation/new/", form, HTTP_ACCEPT_LANGUAGE="en")
    assert r.status_code == 400
    body = r.content.decode()
    assert 'id="id_end_date_error"' in body and "The end cannot lie before the start" in body
    r = client_for("manager").post("/cooperation/new/", form, HTTP_ACCEPT_LANGUAGE="zh-hans")
    assert "结束日期不能早于开始日期" in r.content.decode()
    assert not Agreement.objects.exists()
    # as the user types (htmx): the end field's own error, checked against the start on the form
    live = client_for("manager").post("/cooperation/new/", {**form, "_validate": "end_date"}, HTTP_HX_REQUEST="true")
    assert 'id="id_end_date_error"' in live.content.decode() and "结束日期不能早于开始日期" in live.content.decode()
    page = client_for("manager").get("/cooperation/new/").content.decode()
    assert 'hx-vals=\'{"_validate": "end_date"}\'' in page


@pytest.mark.parametrize("typed, stored", [
    ("￥1,234.50", "1234.50"),  # the yen sign a Chinese input method gives (full width)
    ("1,234.50元", "1234.50"), ("１２３４．５０", "1234.50"), ("¥ 120，000", "120000.00"),
])  # fmt: skip
def test_an_amount_typed_with_a_chinese_input_method_is_read_as_the_sales_forms_read_it(users, xiehe, client_for,
                                                                                       typed, stored):
    form = {k: str(v) for k, v in data(xiehe, users["manager"], amount=typed).items()}
    r = client_for("manager").post("/cooperation/new/", form)
    assert r.status_code == 302
    assert Agreement.objects.get().amount == Decimal(stored)


@pytest.mark.parametrize("typed", ["1.2万", "1_000", "١٢", "十二", "12%"])
def test_an_amount_that_is_no_plain_number_is_refused_under_its_field_not_stored_as_another(users, xiehe, client_for,
                                                                                           typed):
    form = {k: str(v) for k, v in data(xiehe, users["manager"], amount=typed).items()}
    r = client_for("manager").post("/cooperation/new/", form, HTTP_ACCEPT_LANGUAGE="en")
    assert r.status_code == 400
    body = r.content.decode()
    assert 'id="id_amount_error"' in body and "Give the amount in yuan" in body
    assert not Agreement.objects.exists()


def test_text_pasted_with_zero_width_characters_is_stored_without_them(users, xiehe):
    # 心内科\u200b学术合作 looked like 心内科学术合作 but a search for it did not find the agreement
    agreement = services.create_agreement(users["manager"], data(
        xiehe, users["manager"], title="心内科\u200b学术合作　", company_signer="\ufeff王总",
        terms="第一条\u200b\n第二条"))  # fmt: skip
    assert (agreement.title, agreement.company_signer, agreement.terms) == ("心内科学术合作", "王总", "第一条\n第二条")


@pytest.mark.parametrize("upload, message", [
    (lambda: SimpleUploadedFile("a.pdf", b"%PDF-1.4" + b"0" * (20 * 1024 * 1024)), "too large"),
    (lambda: SimpleUploadedFile("a.docx", b"PK\x03\x04 a word file"), "PDF, PNG or JPEG"),
    (lambda: SimpleUploadedFile("a.pdf", b"%PDF-1.4 broken, no pages"), "PDF, PNG or JPEG"),
])  # fmt: skip
def test_a_signed_copy_too_big_of_the_wrong_type_or_broken_is_refused(world, users, upload, message, settings,
                                                                      tmp_path):
    settings.VAR_DIR = tmp_path  # this test's own: the other tests' files are not counted
    agreement = world["ours"]
    with pytest.raises(ValidationError) as e, translation.override("en"):
        services.record_signed(users["rep"], agreement, signed_date=TODAY(), upload=upload(), version=agreement.version)
    assert message in " ".join(e.value.message_dict["signed_copy"])
    agreement.refresh_from_db()
    assert agreement.status == AgreementStatus.DRAFT and not agreement.signed_copy
    assert list(services.files_dir().iterdir()) == []  # nothing left behind


def test_a_signed_copy_is_kept_with_its_fingerprint_and_downloaded_audited(world, users, client_for):
    agreement = world["ours"]
    services.record_signed(users["rep"], agreement, signed_date=TODAY(), upload=SimpleUploadedFile(
        "扫描件.png", tiny_png()), version=agreement.version)  # fmt: skip
    agreement.refresh_from_db()
    assert agreement.status == AgreementStatus.SIGNED and agreement.signed_copy_name == "扫描件.png"
    r = client_for("rep").get(f"/cooperation/{agreement.pk}/signed-copy/")
    assert r.status_code == 200 and b"".join(r.streaming_content) == tiny_png()
    assert AuditEntry.objects.filter(action=AuditEntry.Action.EXPORT, object_type="cooperation.agreement").exists()


def test_a_signed_agreements_terms_cannot_change_but_its_owner_can(world, users):
    agreement = in_force(users["rep"], world["ours"])
    with pytest.raises(ValidationError) as e:
        services.update_agreement(users["rep"], agreement, {"amount": "1.00"}, agreement.version)
    assert list(e.value.message_dict) == ["amount"]
    services.update_agreement(users["manager"], agreement, {"owner": users["manager"].pk}, agreement.version)
    assert Agreement.objects.get(pk=agreement.pk).owner == users["manager"]


def test_only_leadership_or_the_teams_lead_hands_an_agreement_to_another_owner_or_team(world, users, client_for,
                                                                                        team_north):  # fmt: skip
    # anyone managing an agreement could hand it to another team or owner — out of their own team's hands
    from pharmacrm.core.models import Team

    south = Team.objects.create(name="华南团队")
    agreement = world["ours"]
    for change in ({"owner": users["kam"].pk}, {"team": south.pk}):
        with pytest.raises(ValidationError) as e:
            services.update_agreement(users["rep"], agreement, change, agreement.version)
        assert list(e.value.message_dict) == list(change)
    agreement.refresh_from_db()
    assert (agreement.owner, agreement.team, agreement.version) == (users["rep"], team_north, 1)
    # the page shows it under the field, in the reader's language; the API answers 400 naming the field
    form = {"institution": agreement.institution_id, "kind": agreement.kind, "title": agreement.title,
            "company_signer": agreement.company_signer, "start_date": str(agreement.start_date),
            "end_date": str(agreement.end_date), "owner": users["kam"].pk, "team": team_north.pk,
            "version": agreement.version}  # fmt: skip
    r = client_for("rep").post(f"/cooperation/{agreement.pk}/edit/", form, HTTP_ACCEPT_LANGUAGE="zh-hans")
    assert r.status_code == 400 and 'id="id_owner_error"' in r.content.decode()
    assert "团队负责人" in r.content.decode()
    r = client_for("rep").patch(f"/api/v1/cooperation/agreements/{agreement.pk}/",
                                {"team": south.pk, "version": agreement.version}, content_type="application/json",
                                HTTP_ACCEPT_LANGUAGE="en")  # fmt: skip
    assert r.status_code == 400 and "team's lead" in r.json()["team"][0]
    # other changes still go through for them
    services.update_agreement(users["rep"], agreement, {"title": "新标题", "owner": users["rep"].pk}, agreement.version)
    # the lead of the agreement's team may hand it on, and so may leadership
    team_north.lead = users["kam"]
    team_north.save(update_fields=["lead"])
    users["kam"].teams.add(team_north)
    services.update_agreement(users["kam"], agreement, {"owner": users["kam"].pk}, agreement.version)
    services.update_agreement(users["manager"], agreement, {"team": south.pk}, agreement.version)
    agreement.refresh_from_db()
    assert (agreement.title, agreement.owner, agreement.team) == ("新标题", users["kam"], south)


def test_whoever_records_an_agreement_without_leading_gives_it_only_to_themselves_and_their_own_team(
        world, users, client_for, team_north):  # fmt: skip
    # as handing one on (above): a rep recording an agreement could give it to anyone, in any team
    from pharmacrm.core.models import Team

    rep, kam, south = users["rep"], users["kam"], Team.objects.create(name="华南团队")
    for change in ({"owner": kam.pk}, {"team": south.pk}):
        with pytest.raises(ValidationError) as e:
            services.create_agreement(rep, {**data(world["xiehe"], rep), **change})
        assert list(e.value.message_dict) == list(change)
    form = {**data(world["xiehe"], kam), "team": team_north.pk}
    r = client_for("rep").post("/cooperation/new/", form, HTTP_ACCEPT_LANGUAGE="zh-hans")
    assert r.status_code == 400 and 'id="id_owner_error"' in r.content.decode() and "团队负责人" in r.content.decode()
    body = {**data(world["xiehe"], rep, team=south.pk), "start_date": str(form["start_date"]),
            "end_date": str(form["end_date"])}  # fmt: skip
    r = client_for("rep").post("/api/v1/cooperation/agreements/", body, content_type="application/json",
                               HTTP_ACCEPT_LANGUAGE="en")  # fmt: skip
    assert r.status_code == 400 and list(r.json()) == ["team"] and "team's lead" in r.json()["team"][0]
    assert Agreement.objects.count() == 2  # nothing written
    # themselves in their own team; a team's lead (not one of its members) gives it to anyone in it; leadership any
    services.create_agreement(rep, data(world["xiehe"], rep, team=team_north.pk))
    team_north.lead = kam
    team_north.save(update_fields=["lead"])
    services.create_agreement(kam, data(world["ruijin"], rep, team=team_north.pk))
    services.create_agreement(users["manager"], data(world["ruijin"], kam, team=south.pk))
    assert Agreement.objects.count() == 5


def test_a_teams_lead_who_is_not_one_of_its_members_opens_its_agreements(world, users, client_for, team_north):
    kam, ours = users["kam"], world["ours"]
    assert not kam.teams.filter(pk=team_north.pk).exists()
    assert client_for("kam").get(f"/cooperation/{ours.pk}/").status_code == 404
    team_north.lead = kam
    team_north.save(update_fields=["lead"])
    assert client_for("kam").get(f"/cooperation/{ours.pk}/").status_code == 200
    assert client_for("kam").get(f"/api/v1/cooperation/agreements/{ours.pk}/").status_code == 200
    assert services.may_manage(kam, ours)


def test_an_edit_on_a_version_another_user_changed_meanwhile_is_refused(world, users):
    agreement = world["ours"]
    stale = Agreement.objects.get(pk=agreement.pk)
    services.update_agreement(users["rep"], agreement, {"title": "新标题"}, agreement.version)
    with pytest.raises(ConflictError):
        services.update_agreement(users["manager"], stale, {"title": "另一个标题"}, stale.version)
    assert Agreement.objects.get(pk=agreement.pk).title == "新标题"
    r_project = running_project(users["rep"], in_force(users["rep"], Agreement.objects.get(pk=agreement.pk)))
    old = type(r_project).objects.get(pk=r_project.pk)
    services.update_project(users["rep"], r_project, {"budget": "60000"}, r_project.version)
    with pytest.raises(ConflictError):
        services.update_project(users["rep"], old, {"budget": "1"}, old.version)


# --- reminders ----------------------------------------------------------------------------------------------


def test_the_renewal_reminder_and_the_overdue_task_alert_go_once(world, users, settings):
    settings.COOPERATION_RENEWAL_NOTICE_DAYS = 30
    agreement = world["ours"]
    Agreement.objects.filter(pk=agreement.pk).update(end_date=TODAY() + dt.timedelta(days=20))
    agreement.refresh_from_db()
    agreement = in_force(users["rep"], agreement)
    project = running_project(users["rep"], agreement)
    task = services.add_task(users["rep"], project, {"title": "提交会议纪要", "owner": users["kam"].pk,
                                                     "deadline": TODAY() - dt.timedelta(days=1)})  # fmt: skip
    assert services.sweep() == (1, 0, 1)
    assert services.sweep() == (0, 0, 0)
    assert Notification.objects.filter(recipient=users["rep"], kind="cooperation.renewal").count() == 1
    assert Notification.objects.filter(recipient=users["kam"], kind="cooperation.overdue").count() == 1
    task.refresh_from_db()
    assert task.overdue_notified_at is not None


def test_an_agreement_in_force_expires_after_its_end(world, users):
    agreement = in_force(users["rep"], world["ours"])
    Agreement.objects.filter(pk=agreement.pk).update(end_date=TODAY() - dt.timedelta(days=1))
    assert services.sweep()[1] == 1
    assert Agreement.objects.get(pk=agreement.pk).status == AgreementStatus.EXPIRED


# --- acceptance and settlement --------------------------------------------------------------------------------


def test_a_failed_acceptance_keeps_the_project_running_a_passed_one_waits_for_the_settlement(world, users):
    project = running_project(users["rep"], in_force(users["rep"], world["ours"]))
    accept = {"accepted_on": TODAY(), "standards": "两场会议、参会人数≥100", "accepted_by": "李院长"}
    services.record_acceptance(users["rep"], project, {**accept, "result": "failed", "remarks": "只办了一场"})
    project.refresh_from_db()
    assert project.status == ProjectStatus.RUNNING
    with pytest.raises(ValidationError) as e:
        services.close_project(users["rep"], project, project.version)
    assert {"status", "settlement_status"} <= e.value.message_dict.keys()
    services.record_acceptance(users["rep"], project, {**accept, "result": "passed"}, pdf("验收单.pdf"))
    project.refresh_from_db()
    assert project.status == ProjectStatus.ACCEPTED
    with pytest.raises(ValidationError) as e:
        services.close_project(users["rep"], project, project.version)
    assert list(e.value.message_dict) == ["settlement_status"]


def test_payments_add_up_to_the_settlement_and_only_then_the_project_closes(world, users):
    project = running_project(users["rep"], in_force(users["rep"], world["ours"]))
    services.set_amount_due(users["rep"], project, {"amount_due": "100000.00"}, project.version)
    services.add_payment(users["rep"], project, {"paid_on": TODAY(), "amount": "30000.50", "invoice_number": "FP001"})
    project.refresh_from_db()
    assert project.settlement_status == SettlementStatus.PARTLY and services.amount_paid(project) == Decimal("30000.50")
    with pytest.raises(ValidationError) as e:
        services.add_payment(users["rep"], project, {"paid_on": TODAY(), "amount": "70000.00"})
    assert "69,999.50" in " ".join(e.value.message_dict["amount"])
    services.add_payment(users["rep"], project, {"paid_on": TODAY(), "amount": "69999.50", "invoice_number": "FP002"})
    project.refresh_from_db()
    assert project.settlement_status == SettlementStatus.SETTLED
    with pytest.raises(ValidationError):  # settled, but not accepted yet
        services.close_project(users["rep"], project, project.version)
    services.record_acceptance(users["rep"], project, {"accepted_on": TODAY(), "result": "remarks", "remarks": "资料晚交",
                                                       "standards": "两场会议", "accepted_by": "李院长"})  # fmt: skip
    project.refresh_from_db()
    services.close_project(users["rep"], project, project.version)
    project.refresh_from_db()
    assert project.status == ProjectStatus.CLOSED
    statuses = [e.changes.get("status") for e in AuditEntry.objects.filter(object_type="cooperation.project",
                                                                           object_id=str(project.pk))]  # fmt: skip
    assert ["running", "accepted"] in statuses and ["accepted", "closed"] in statuses


def test_a_project_needs_a_responsible_person_and_a_signed_agreement(world, users):
    with pytest.raises(ValidationError) as e:
        services.create_project(users["rep"], world["ours"], {"title": "x", "goal": "y"})
    assert "agreement" in e.value.message_dict  # a draft
    agreement = in_force(users["rep"], world["ours"])
    with pytest.raises(ValidationError) as e:
        services.create_project(users["rep"], agreement, {"title": "x", "goal": "y", "start_date": TODAY(),
                                                          "end_date": TODAY() - dt.timedelta(days=1)})  # fmt: skip
    assert {"responsible", "end_date"} <= e.value.message_dict.keys()
    with pytest.raises(ValidationError) as e, translation.override("en"):  # could not open the project's page
        services.create_project(users["rep"], agreement, {"title": "x", "goal": "y", "responsible": users["pv"].pk,
                                                          "start_date": TODAY(), "end_date": TODAY()})  # fmt: skip
    assert "does not run cooperation projects" in e.value.message_dict["responsible"][0]


# --- who sees what -----------------------------------------------------------------------------------------------

SEES_ALL = {"admin", "manager", "analyst", "auditor"}
NO_ACCESS = {"agent", "expert", "support", "aftersales", "pv"}


@pytest.mark.parametrize("role", ["admin", "manager", "kam", "rep", "analyst", "auditor", "agent", "expert", "support",
                                  "aftersales", "pv"])  # fmt: skip
def test_who_sees_which_agreements_on_the_page_and_the_api(world, client_for, role):
    client = client_for(role)
    page = client.get("/cooperation/")
    api = client.get("/api/v1/cooperation/agreements/")
    if role in NO_ACCESS:
        assert page.status_code == 403 and api.status_code == 403
        return
    assert page.status_code == 200 and api.status_code == 200
    numbers = {row["number"] for row in api.json()["results"]}
    expected = {"admin": {"ours", "theirs"}, "manager": {"ours", "theirs"}, "analyst": {"ours", "theirs"},
                "auditor": {"ours", "theirs"}, "kam": {"theirs"}, "rep": {"ours"}}[role]  # fmt: skip
    assert numbers == {world[k].number for k in expected}
    body = page.content.decode()
    assert all(world[k].number in body for k in expected)
    mine = world["ours"] if "ours" in expected else world["theirs"]
    detail = client.get(f"/cooperation/{mine.pk}/")
    assert detail.status_code == 200
    write = client.patch(f"/api/v1/cooperation/agreements/{mine.pk}/", {"title": "改", "version": mine.version},
                         content_type="application/json")  # fmt: skip
    assert write.status_code == (403 if role in {"analyst", "auditor"} else 200)


def test_a_rep_cannot_open_or_change_another_teams_agreement(world, client_for, users):
    theirs = world["theirs"]
    rep = client_for("rep")
    assert rep.get(f"/cooperation/{theirs.pk}/").status_code == 404
    assert rep.patch(f"/api/v1/cooperation/agreements/{theirs.pk}/", {"title": "改", "version": 1},
                     content_type="application/json").status_code == 404  # fmt: skip
    with pytest.raises(PermissionDenied):
        services.update_agreement(users["rep"], theirs, {"title": "改"}, theirs.version)


def test_the_api_names_the_field_in_the_readers_language(world, client_for, users):
    r = client_for("manager").post("/api/v1/cooperation/agreements/", {
        **{k: str(v) for k, v in data(world["xiehe"], users["manager"]).items()},
        "end_date": "2000-01-01"}, content_type="application/json", HTTP_ACCEPT_LANGUAGE="en")  # fmt: skip
    assert r.status_code == 400 and "The end cannot lie before the start" in r.json()["end_date"][0]
    stale = client_for("rep").patch(f"/api/v1/cooperation/agreements/{world['ours'].pk}/", {"title": "x", "version": 9},
                                    content_type="application/json")  # fmt: skip
    assert stale.status_code == 409 and stale.json()["current_version"] == world["ours"].version


def test_the_api_runs_a_project_through_to_closed(world, client_for, users):
    rep = client_for("rep")
    agreement = in_force(users["rep"], world["ours"])
    r = rep.post("/api/v1/cooperation/projects/", {"agreement": agreement.pk, "title": "培训", "goal": "培训护士",
                 "responsible": users["rep"].pk, "start_date": str(agreement.start_date),
                 "end_date": str(agreement.end_date)}, content_type="application/json")  # fmt: skip
    assert r.status_code == 201, r.content
    pid, url = r.json()["id"], f"/api/v1/cooperation/projects/{r.json()['id']}/"
    assert rep.post(url + "start/", {"version": 1}, content_type="application/json").status_code == 200
    r = rep.post(url + "acceptances/", {"accepted_on": str(TODAY()), "result": "passed", "standards": "培训50人",
                 "accepted_by": "护理部"}, content_type="application/json")  # fmt: skip
    assert r.status_code == 201 and r.json()["status"] == "accepted"
    r = rep.post(url + "amount-due/", {"amount_due": "8000", "version": r.json()["version"]},
                 content_type="application/json")  # fmt: skip
    assert r.status_code == 200
    r = rep.post(url + "payments/", {"paid_on": str(TODAY()), "amount": "8000"}, content_type="application/json")
    assert r.json()["settlement_status"] == "settled" and r.json()["amount_paid"] == "8000.00"
    r = rep.post(url + "close/", {"version": r.json()["version"]}, content_type="application/json")
    assert r.status_code == 200 and r.json()["status"] == "closed"
    assert client_for("auditor").post(url + "close/", {"version": 1}, content_type="application/json").status_code == 403
    assert pid


def test_the_export_lists_the_agreements_one_may_see_and_is_audited(world, client_for):
    from openpyxl import load_workbook

    r = client_for("rep").get("/cooperation/?format=xlsx")
    assert r.status_code == 200
    sheet = load_workbook(io.BytesIO(r.content)).active
    numbers = [row[0] for row in sheet.iter_rows(min_row=2, values_only=True)]
    assert numbers == [world["ours"].number]
    assert AuditEntry.objects.filter(action=AuditEntry.Action.EXPORT, object_type="cooperation.agreement",
                                     actor__username="rep").exists()  # fmt: skip


@pytest.mark.parametrize("lang, words", [("zh-hans", ["合作协议", "合作项目", "验收", "结算"]),
                                         ("en", ["Cooperation agreements", "Cooperation projects", "Acceptance", "Settlement"]),
                                         ("zh-hant", ["合作協議", "合作項目", "驗收", "結算"])])  # fmt: skip
def test_the_pages_in_each_language(world, users, client_for, lang, words):
    project = running_project(users["rep"], in_force(users["rep"], world["ours"]))
    rep = client_for("rep")
    listing = rep.get("/cooperation/", HTTP_ACCEPT_LANGUAGE=lang).content.decode()
    agreement = rep.get(f"/cooperation/{world['ours'].pk}/", HTTP_ACCEPT_LANGUAGE=lang).content.decode()
    page = rep.get(f"/cooperation/projects/{project.pk}/", HTTP_ACCEPT_LANGUAGE=lang).content.decode()
    assert words[0] in listing and words[1] in agreement and words[2] in page and words[3] in page
    block = rep.get(f"/cooperation/customer/{world['xiehe'].pk}/", HTTP_ACCEPT_LANGUAGE=lang).content.decode()
    assert world["ours"].number in block and project.title in block


def test_a_task_owner_reports_progress_on_the_page_and_my_tasks_lists_it(world, users, client_for):
    project = running_project(users["rep"], in_force(users["rep"], world["ours"]))
    task = services.add_task(users["rep"], project, {"title": "邀请讲者", "owner": users["rep"].pk,
                                                     "deadline": TODAY() + dt.timedelta(days=5)})  # fmt: skip
    rep = client_for("rep")
    report = {"action": "task-update", "task": task.pk, "status": "doing", "progress": "40"}
    # without the version loaded (as the API since session 46): refused with the reason, nothing saved
    r = rep.post(f"/cooperation/projects/{project.pk}/", report, HTTP_ACCEPT_LANGUAGE="en", follow=True)
    assert "Send the task's version you loaded" in " ".join(str(m) for m in r.context["messages"])
    assert Task.objects.get(pk=task.pk).progress == 0
    r = rep.post(f"/cooperation/projects/{project.pk}/", {**report, "version": "abc"}, follow=True)
    assert "未保存" in " ".join(str(m) for m in r.context["messages"])  # a garbled version is a stale one
    r = rep.post(f"/cooperation/projects/{project.pk}/", {**report, "version": task.version})
    assert r.status_code == 302
    assert Task.objects.get(pk=task.pk).progress == 40
    assert "邀请讲者" in rep.get("/cooperation/tasks/?mine=1").content.decode()
    assert "邀请讲者" not in client_for("kam").get("/cooperation/tasks/?mine=1").content.decode()


def test_the_pages_forms_show_each_error_under_its_field_and_save_what_is_right(world, users, client_for):
    rep, agreement = client_for("rep"), world["ours"]
    url = f"/cooperation/{agreement.pk}/"
    sign = {"action": "sign", "version": agreement.version, "sign-signed_date": str(TODAY())}
    r = rep.post(url, {**sign, "sign-signed_copy": SimpleUploadedFile("a.pdf", b"%PDF-1.4 not really")},
                 HTTP_ACCEPT_LANGUAGE="en")  # fmt: skip
    assert r.status_code == 400 and 'id="id_sign-signed_copy_error"' in r.content.decode()
    assert "Upload a PDF, PNG or JPEG file." in r.content.decode()
    assert rep.post(url, {**sign, "sign-signed_copy": pdf()}).status_code == 302
    agreement.refresh_from_db()
    assert agreement.status == AgreementStatus.SIGNED
    agreement = services.put_in_force(users["rep"], agreement, agreement.version)
    project = running_project(users["rep"], agreement)
    services.set_amount_due(users["rep"], project, {"amount_due": "1000"}, project.version)
    page = f"/cooperation/projects/{project.pk}/"
    r = rep.post(page, {"action": "payment", "payment-paid_on": str(TODAY()), "payment-amount": "1500"},
                 HTTP_ACCEPT_LANGUAGE="zh-hans")  # fmt: skip
    assert r.status_code == 400 and 'id="id_payment-amount_error"' in r.content.decode()
    assert "尚待支付的金额仅为 ¥1,000.00" in r.content.decode()
    assert rep.post(page, {"action": "payment", "payment-paid_on": str(TODAY()), "payment-amount": "1000",
                           "payment-invoice_number": "FP9"}).status_code == 302  # fmt: skip
    assert "已结算" in rep.get(page).content.decode()


def test_the_customer_360_page_has_the_cooperation_block_for_those_who_may_see_it(world, client_for):
    url = f"/customers/institutions/{world['xiehe'].pk}/"
    panel = f"/cooperation/customer/{world['xiehe'].pk}/"
    assert panel in client_for("rep").get(url).content.decode()
    assert panel not in client_for("agent").get(url).content.decode()
    assert client_for("agent").get(panel).status_code == 403
    assert world["ours"].number not in client_for("kam").get(panel).content.decode()  # not one of the KAM's


def test_a_customer_merge_moves_its_agreements_to_the_record_kept(world, users):
    """A duplicate of 瑞金 merged into 瑞金: its agreement (and the project under it) is then 瑞金's, found on its page."""
    from pharmacrm.customers import services as customers

    duplicate = customers.create_institution(users["admin"], {"name": "瑞金医院（重复）", "kind": "hospital",
                                                              "region": world["ruijin"].region})  # fmt: skip
    agreement = services.create_agreement(users["kam"], data(duplicate, users["kam"], title="重复记录上的协议"))
    customers.merge(users["admin"], world["ruijin"], duplicate)
    agreement.refresh_from_db()
    assert agreement.institution == world["ruijin"]
    assert set(world["ruijin"].cooperation_agreements.values_list("number", flat=True)) == {
        world["theirs"].number, agreement.number}


def test_a_task_given_to_someone_outside_the_agreements_team_is_theirs_to_open_and_report(world, users, client_for):
    # the key-account manager (another team) runs cooperation projects, so may be given a task; the task was then
    # missing from their "my tasks", their progress report and the overdue alert's link answered 404
    project = running_project(users["rep"], in_force(users["rep"], world["ours"]))
    task = services.add_task(users["rep"], project, {"title": "邀请讲者", "owner": users["kam"].pk,
                                                     "deadline": TODAY() + dt.timedelta(days=5)})  # fmt: skip
    kam = client_for("kam")
    assert "邀请讲者" in kam.get("/cooperation/tasks/?mine=1").content.decode()
    assert kam.get(f"/cooperation/projects/{project.pk}/").status_code == 200
    r = kam.post(f"/cooperation/projects/{project.pk}/", {"action": "task-update", "task": task.pk, "status": "doing",
                                                          "progress": "40", "version": task.version})  # fmt: skip
    assert r.status_code == 302 and Task.objects.get(pk=task.pk).progress == 40
    r = kam.post(f"/api/v1/cooperation/projects/{project.pk}/task-progress/",
                 {"task": task.pk, "progress": 60, "version": Task.objects.get(pk=task.pk).version},
                 content_type="application/json")  # fmt: skip
    assert r.status_code == 200 and Task.objects.get(pk=task.pk).progress == 60
    # but not the agreement itself, nor anyone else's project
    assert kam.get(f"/cooperation/{world['ours'].pk}/").status_code == 404
    assert client_for("kam").post(f"/cooperation/projects/{project.pk}/", {"action": "start"}).status_code in (302, 403)


# --- two people reporting the same task's progress ------------------------------------------------------------


def test_a_task_progress_report_on_a_version_someone_else_changed_is_refused_naming_the_task_and_who(
        world, users, client_for):  # fmt: skip
    # the agreement's rep and the task's owner (the key-account manager) both had the page open at 0 %: the owner
    # reported 60 %, then the rep's 30 % silently overwrote it
    project = running_project(users["rep"], in_force(users["rep"], world["ours"]))
    task = services.add_task(users["rep"], project, {"title": "邀请讲者", "owner": users["kam"].pk,
                                                     "deadline": TODAY() + dt.timedelta(days=5)})  # fmt: skip
    loaded = task.version
    page = f"/cooperation/projects/{project.pk}/"
    assert f'name="version" value="{loaded}"' in client_for("rep").get(page).content.decode()
    kam, rep = client_for("kam"), client_for("rep")
    r = kam.post(page, {"action": "task-update", "task": task.pk, "status": "doing", "progress": "60",
                        "version": loaded})  # fmt: skip
    assert r.status_code == 302
    r = rep.post(page, {"action": "task-update", "task": task.pk, "status": "doing", "progress": "30",
                        "version": loaded}, HTTP_ACCEPT_LANGUAGE="zh-hans", follow=True)  # fmt: skip
    shown = " ".join(str(m) for m in r.context["messages"])
    assert "邀请讲者" in shown and users["kam"].display_name in shown and "未保存" in shown
    assert Task.objects.get(pk=task.pk).progress == 60
    # the API: a stale version is a 409 naming them too, in the reader's language; no version is a 400
    url = f"/api/v1/cooperation/projects/{project.pk}/task-progress/"
    r = rep.post(url, {"task": task.pk, "progress": 30, "version": loaded}, content_type="application/json",
                 HTTP_ACCEPT_LANGUAGE="en")  # fmt: skip
    assert r.status_code == 409 and "邀请讲者" in r.json()["detail"] and users["kam"].display_name in r.json()["detail"]
    assert "nothing was saved" in r.json()["detail"]
    r = rep.post(url, {"task": task.pk, "progress": 30}, content_type="application/json")
    assert r.status_code == 400 and "version" in r.json()
    assert Task.objects.get(pk=task.pk).progress == 60
    current = Task.objects.get(pk=task.pk).version
    r = rep.post(url, {"task": task.pk, "progress": 70, "version": current}, content_type="application/json")
    assert r.status_code == 200 and Task.objects.get(pk=task.pk).progress == 70
    task_json = next(t for t in r.json()["tasks"] if t["id"] == task.pk)
    assert task_json["version"] == current + 1
    with pytest.raises(ConflictError):
        services.update_task(users["kam"], Task.objects.get(pk=task.pk), {"progress": 90}, loaded)


# --- files a killed upload left behind ----------------------------------------------------------------------


def test_the_nightly_sweep_deletes_only_the_cooperation_files_no_record_names(world, users, settings, tmp_path,
                                                                               caplog):  # fmt: skip
    """The signed copy and the acceptance's file are written before the transaction that records them: a process
    killed in between left them in var/cooperation/ for ever. The sweep deletes those a day old that no agreement,
    acceptance or agreement history names — never the copy in force, a replaced copy, an acceptance's file or an
    upload still under way — and logs and audits what it deleted."""
    import logging
    import os

    from pharmacrm.cooperation import tasks

    settings.VAR_DIR = tmp_path
    agreement = world["ours"]
    services.record_signed(users["rep"], agreement, signed_date=TODAY(), upload=pdf(), version=agreement.version)
    replaced = agreement.signed_copy
    agreement = in_force(users["rep"], agreement)  # a better scan: the first stays, named by the history
    current = agreement.signed_copy
    project = running_project(users["rep"], agreement)
    accepted = services.record_acceptance(users["rep"], project, {
        "accepted_on": TODAY(), "result": "passed", "standards": "会议纪要齐全", "accepted_by": "李主任"},
        SimpleUploadedFile("验收单.pdf", tiny_pdf(), content_type="application/pdf")).attachment  # fmt: skip
    folder = services.files_dir()
    killed = folder / f"{agreement.number}-{'a' * 32}.pdf"  # the signing whose process was killed
    killed_acceptance = folder / f"acceptance-{project.pk}-{'c' * 32}.png"
    under_way = folder / f"{agreement.number}-{'b' * 32}.pdf"  # an upload writing now
    for path in (killed, killed_acceptance, under_way):
        path.write_bytes(tiny_pdf())
    two_days_ago = (timezone.now() - dt.timedelta(days=2)).timestamp()
    for name in (replaced, current, accepted, killed.name, killed_acceptance.name):
        os.utime(folder / name, (two_days_ago, two_days_ago))
    assert len({replaced, current, accepted}) == 3

    with caplog.at_level(logging.WARNING, logger="pharmacrm.cooperation.services"):
        assert tasks.sweep_cooperation_files.call_local() == 2
    assert not killed.exists() and not killed_acceptance.exists()
    assert all((folder / name).is_file() for name in (replaced, current, accepted, under_way.name))
    assert killed.name in caplog.text and killed_acceptance.name in caplog.text
    entry = AuditEntry.objects.get(object_type="cooperation.agreement", action="delete")
    assert entry.extra["count"] == 2 and entry.extra["files"] == sorted([killed.name, killed_acceptance.name])
    assert tasks.sweep_cooperation_files.call_local() == 0  # nothing left: no second entry
    assert AuditEntry.objects.filter(object_type="cooperation.agreement", action="delete").count() == 1
    # the copies are still downloaded
    assert services.kept_file(current) and services.kept_file(accepted)


def test_a_tasks_progress_and_a_checks_date_typed_as_people_type_them_are_read(world, users, client_for):
    """60% or ６０ of a task's progress, 2026/3/15 of a check's day (the API read it, the service did not): each was
    refused; int() read Arabic-Indic ٦٠ as 60."""
    project = running_project(users["rep"], in_force(users["rep"], world["ours"]))
    task = services.add_task(users["rep"], project, {"title": "邀请讲者", "owner": users["rep"].pk,
                                                     "deadline": TODAY() + dt.timedelta(days=5)})  # fmt: skip
    page = client_for("rep").get(f"/cooperation/projects/{project.pk}/").content.decode()
    assert 'type="number" name="progress"' not in page
    r = client_for("rep").post(f"/cooperation/projects/{project.pk}/", {
        "action": "task-update", "task": task.pk, "status": "doing", "progress": "６０％", "version": task.version})
    assert r.status_code == 302 and Task.objects.get(pk=task.pk).progress == 60
    with pytest.raises(ValidationError) as e:
        services.update_task(users["rep"], Task.objects.get(pk=task.pk), {"progress": "٦٠"},
                             version=Task.objects.get(pk=task.pk).version)  # fmt: skip
    assert list(e.value.message_dict) == ["progress"]
    day = TODAY() - dt.timedelta(days=1)
    check = services.add_check(users["rep"], project, {"checked_on": f"{day.year}年{day.month}月{day.day}日",
                                                       "progress": "30%", "problems": "无", "measures": "无"})  # fmt: skip
    assert (check.checked_on, check.progress) == (day, 30)


@pytest.mark.parametrize("lang", ["zh-hans", "en", "zh-hant"])
def test_amounts_are_written_as_money_in_every_language(world, users, client_for, lang):
    # ¥{{ amount|intcomma }} grouped nothing on a Chinese page (¥120000.00 beside the purchases' ¥1,192,504.50)
    project = running_project(users["rep"], in_force(users["rep"], world["ours"]), budget="1234567.5")
    services.set_amount_due(users["rep"], project, {"amount_due": "8000"}, project.version)
    rep = client_for("rep")
    listing = rep.get("/cooperation/", HTTP_ACCEPT_LANGUAGE=lang).content.decode()
    agreement = rep.get(f"/cooperation/{world['ours'].pk}/", HTTP_ACCEPT_LANGUAGE=lang).content.decode()
    page = rep.get(f"/cooperation/projects/{project.pk}/", HTTP_ACCEPT_LANGUAGE=lang).content.decode()
    assert "¥120,000.00" in listing and "¥120,000.00" in agreement
    assert "¥1,234,567.50" in page and 'id="amount-due">¥8,000.00<' in page and 'id="amount-paid">¥0.00<' in page
