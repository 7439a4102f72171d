"""Session 22 (evaluation and key-account programme)."""

from __future__ import annotations

import pytest

from pharmacrm.keyaccounts import evaluation
from pharmacrm.keyaccounts.choices import ModelKind
from pharmacrm.keyaccounts.models import KeyAccount
from pharmacrm.servicedesk import revisit
from pharmacrm.servicedesk.choices import ActionStatus
from pharmacrm.servicedesk.models import ImprovementAction

from .eval_fixtures import *  # noqa: F403  (fixtures)
from .eval_fixtures import H1_2026, H2_2025
from .programme_fixtures import *  # noqa: F403  (fixtures)

pytestmark = pytest.mark.django_db
EN = {"HTTP_ACCEPT_LANGUAGE": "en"}


# --- 1. an improvement action reworded by its owner is still the period's ----------------------------------------


def test_a_reworded_and_closed_improvement_action_is_not_opened_again_in_its_period(purchases, users):
    """协和 is D in 2026H1 and gets its action. Its owner rewrote the title in their own words ('改善协和回款：每月对账')
    and closed it: the next run of the period — after every order import — opened a second action for the same
    customer and period, since the evaluation knew the period's action by the [2026H1] at the end of its title."""
    xiehe = purchases["xiehe"]
    evaluation.run(ModelKind.EVALUATION, as_of=H1_2026)
    [action] = ImprovementAction.objects.filter(institution=xiehe)
    owner = action.owner

    revisit.update_action(owner, action, {"title": "改善协和回款：每月对账"}, version=action.version)
    action.refresh_from_db()
    assert action.title == "改善协和回款：每月对账 [2026H1]"
    revisit.transition_action(owner, action, ActionStatus.DONE, version=action.version, outcome="已每月对账")

    later = evaluation.run(ModelKind.EVALUATION, as_of=H1_2026, ids=[xiehe.pk])  # after an import
    assert later.actions == 0
    assert ImprovementAction.objects.filter(institution=xiehe).count() == 1


def test_an_action_not_from_an_evaluation_keeps_the_title_its_owner_gives(users, xiehe):
    import datetime as dt

    from django.utils import timezone

    from pharmacrm.servicedesk.services import SYSTEM

    action = revisit._create_action(SYSTEM, {
        "title": "Clarify the overdue invoice", "owner": users["manager"], "institution": xiehe,
        "due_date": timezone.localdate() + dt.timedelta(days=7),
    })  # fmt: skip
    revisit.update_action(users["manager"], action, {"title": "Clarify the invoice"}, version=action.version)
    action.refresh_from_db()
    assert action.title == "Clarify the invoice"


# --- 2. a customer merged between two periods moves from its duplicate's class ------------------------------------


def test_the_master_record_of_a_merged_customer_moves_from_the_duplicates_class(purchases, users, admin_user,
                                                                                 beijing, client_for):
    """协和's history (class C in 2025H2) lay on its old ERP record; the master-data team merged it into the new
    master record in 2026H1. The survivor's first score of 2026H1 showed it as new to evaluation — the results page
    counted a customer evaluated for years among the new ones."""
    from pharmacrm.customers import services as customers
    from pharmacrm.keyaccounts.models import Score

    xiehe = purchases["xiehe"]
    evaluation.run(ModelKind.EVALUATION, as_of=H2_2025)
    evaluation.run(ModelKind.EVALUATION, as_of=H1_2026)
    before = Score.objects.get(institution=xiehe, period="2025H2")
    master = customers.create_institution(admin_user, {"name": "北京协和医院（主数据）", "kind": "hospital", "grade": "3A",
                                                       "region": beijing})  # fmt: skip

    customers.merge(admin_user, master, xiehe)
    evaluation.run(ModelKind.EVALUATION, as_of=H1_2026, ids=[master.pk])  # the update after the merge

    score = Score.objects.get(institution=master, period="2026H1")
    assert (score.previous_klass, score.previous_score) == (before.klass, before.score)
    # and so when the period is scored for everyone at its first run
    Score.objects.filter(period="2026H1").delete()
    evaluation.run(ModelKind.EVALUATION, as_of=H1_2026)
    score = Score.objects.get(institution=master, period="2026H1")
    assert (score.previous_klass, score.previous_score) == (before.klass, before.score)


# --- 3. a de-listed account is no one's work any more ---------------------------------------------------------------


def test_a_delisted_accounts_open_meeting_actions_leave_the_members_work_page(users, xiehe, staffed, make_proposal,
                                                                                manager2, client_for):
    """After 协和 was de-listed its open meeting action stayed on the product expert's 'My key-account work' — late
    for ever, since a closed file's actions can no longer be ticked off — and the page still listed 协和 among the
    accounts the expert serves, with the key-account badge."""
    import datetime as dt

    from django.utils import timezone

    from pharmacrm.keyaccounts import services

    from .test_lifecycle_fixes import delist

    account = staffed(xiehe)
    # listed the day before (a meeting is never dated before the listing day; an hour ago may be yesterday)
    KeyAccount.objects.filter(pk=account.pk).update(listed_at=timezone.now() - dt.timedelta(days=1))
    services.record_meeting(users["kam"], account, {
        "held_at": timezone.now() - dt.timedelta(hours=1), "title": "季度沟通会", "minutes": "回顾供货"},
        [{"title": "补发检测报告", "owner": users["expert"], "due_date": timezone.localdate() + dt.timedelta(days=7)}])  # fmt: skip
    page = client_for("expert").get("/keyaccounts/my/", **EN).content.decode()
    assert "补发检测报告" in page and account.number in page

    delist(make_proposal, manager2, xiehe)

    page = client_for("expert").get("/keyaccounts/my/", **EN).content.decode()
    assert "补发检测报告" not in page and account.number not in page
    assert "No open actions." in page


# --- 4. an empty cell of the KOL file leaves the stored value --------------------------------------------------------


def test_an_empty_cell_of_the_kol_file_leaves_what_is_stored(users, xiehe, huashan):
    """Marketing filled the documented five-column template with this quarter's assessments only: each row's empty
    KOL cells wiped the key opinion leaders entered before (count 0, no names, no notes) — and a row listing KOLs
    only wiped marketing's assessment."""
    from django.core.files.uploadedfile import SimpleUploadedFile

    from pharmacrm.keyaccounts import influence
    from pharmacrm.keyaccounts.models import MarketInfluence

    influence.save_influence(users["analyst"], xiehe, {"kol_count": 3, "kol_names": "王医生、李医生、张医生",
                                                       "assessment": 88, "notes": "学会主委"})  # fmt: skip
    influence.save_influence(users["analyst"], huashan, {"kol_count": 0, "assessment": 75})
    csv_text = ("统一社会信用代码,客户外部编号,KOL人数,KOL姓名,市场影响力评分,备注\n"
                f"{xiehe.credit_code},,,,92,\n"
                f"{huashan.credit_code},,,赵医生、钱医生,,\n")  # fmt: skip
    upload = SimpleUploadedFile("kol.csv", csv_text.encode("utf-8-sig"), content_type="text/csv")

    assert influence.import_kols(users["analyst"], upload) == (2, [])

    row = MarketInfluence.objects.get(institution=xiehe)
    assert (row.kol_count, row.kol_names, row.assessment, row.notes) == (3, "王医生、李医生、张医生", 92, "学会主委")
    row = MarketInfluence.objects.get(institution=huashan)
    assert (row.kol_count, row.kol_names, row.assessment) == (2, "赵医生、钱医生", 75)


# --- 5. the models page lists the weights in the measures' order -------------------------------------------------


def test_the_models_page_lists_the_weights_in_the_measures_order(users, client_for):
    """On PostgreSQL the model in force listed its weights as jsonb keeps them (by the length of the key): purchase
    amount, credit status, purchase frequency, satisfaction — unlike its form, its history and every score."""
    import re

    page = client_for("analyst").get("/keyaccounts/models/", **EN).content.decode()
    section = page[page.index('id="model-evaluation-title"'):page.index('id="model-candidate-title"')]
    table = section[section.index("<tbody>"):section.index("</tbody>")]
    labels = re.findall(r"<tr><td>([^<]+)</td>", table)
    assert labels == ["Purchase amount", "Purchase frequency", "Satisfaction", "Credit status"]
    section = page[page.index('id="model-candidate-title"'):]
    table = section[section.index("<tbody>"):section.index("</tbody>")]
    assert re.findall(r"<tr><td>([^<]+)</td>", table) == [
        "Purchase amount", "Purchase frequency", "Length of cooperation", "Market influence", "Growth"]


# --- 6. a department's revisits are its hospital's satisfaction ---------------------------------------------------


def test_the_revisits_of_a_departments_tickets_count_for_its_hospitals_satisfaction(purchases, users, admin_user):
    """协和's 心内科 raised its tickets as the department, and rated them 5 out of 5. The customer evaluation read the
    revisits of tickets raised as the hospital only: 协和's satisfaction stayed 'no survey answered: default 60' —
    and, a department being scored never, the department's revisits counted for no customer at all."""
    import datetime as dt

    from django.utils import timezone

    from pharmacrm.customers import services as customers
    from pharmacrm.keyaccounts.models import Score
    from pharmacrm.servicedesk.models import Survey

    from .test_lifecycle_fixes import ticket_for

    xiehe = purchases["xiehe"]
    cardiology = customers.create_institution(admin_user, {"name": "心内科", "kind": "department", "parent": xiehe})
    answered = timezone.make_aware(dt.datetime(2026, 5, 10, 10))
    for score in (5, 4):
        Survey.objects.create(ticket=ticket_for(users, cardiology), channel="phone", answered_at=answered, score=score)

    evaluation.run(ModelKind.EVALUATION, as_of=H1_2026)

    [satisfaction] = [c for c in Score.objects.get(institution=xiehe, period="2026H1").components
                      if c["name"] == "satisfaction"]  # fmt: skip
    assert not satisfaction["default"]
    assert (satisfaction["value"], satisfaction["detail"]["surveys"]) == ("87.50", 2)  # CSAT 4.5 → 87.5


# --- 7. the evaluation API reads the period as the other lists do ----------------------------------------------------


def test_the_evaluation_api_reads_a_lowercase_period_and_refuses_what_is_no_period(purchases, users, api_client):
    """A BI script asking /api/v1/evaluations/?period=2026h1 got an empty list, as if nobody had been evaluated (the
    incentives and the key-account evaluations read 2026h1 as 2026H1); ?period=H1-2026 answered the same."""
    from django.utils import translation

    evaluation.run(ModelKind.EVALUATION, as_of=H1_2026)
    evaluation.run(ModelKind.CANDIDATE, as_of=H1_2026)
    api = api_client("analyst")

    upper = api.get("/api/v1/evaluations/?period=2026H1").json()
    lower = api.get("/api/v1/evaluations/?period=2026h1").json()
    assert upper["count"] == 3 and lower == upper
    assert api.get("/api/v1/keyaccounts/candidates/?period=2026-06").json()["count"] == 3

    with translation.override("en"):
        for url in ("/api/v1/evaluations/?period=H1-2026", "/api/v1/keyaccounts/candidates/?period=2026-13"):
            answer = api.get(url, HTTP_ACCEPT_LANGUAGE="en")
            assert answer.status_code == 400
            assert answer.json()["period"] == [
                "Write the period as 2026H2 (a half-year), 2026Q3 (a quarter) or 2026-11 (a month)."]


# --- 8. a threshold the model does not have is refused --------------------------------------------------------------


def test_a_threshold_the_model_does_not_have_is_refused(users, api_client):
    """A client lowering class A's threshold sent {"thresholds": {"a": 85}}: the answer was 200 with a new version,
    which kept A at 80 and carried a threshold "a" that nothing reads."""
    api = api_client("analyst")
    for url, sent in (("/api/v1/scoring-models/evaluation/", {"a": 85}),
                      ("/api/v1/scoring-models/candidate/", {"A": 60})):  # fmt: skip
        answer = api.put(url, {"thresholds": sent, "version": 1}, format="json")
        assert answer.status_code == 400, answer.json()
        assert answer.json()["thresholds"] == [f"Unknown thresholds: {next(iter(sent))}."]
    assert api.get("/api/v1/scoring-models/evaluation/").json()["version"] == 1
    answer = api.put("/api/v1/scoring-models/evaluation/", {"thresholds": {"A": 85}, "version": 1}, format="json")
    assert answer.status_code == 200 and answer.json()["thresholds"] == {"A": 85, "B": 60, "C": 40}
