"""The evaluation pages: results by class with movement, the drill-down (every component explained, the
contributions adding up), runs, improvement actions, market influence, the scoring models and the block on
a Customer 360 page — and who may open each of them."""

from __future__ import annotations

import pytest

from pharmacrm.core.models import AuditEntry
from pharmacrm.core.roles import Role
from pharmacrm.keyaccounts import evaluation
from pharmacrm.keyaccounts.choices import ModelKind
from pharmacrm.keyaccounts.models import EvaluationRun, MarketInfluence, Score, ScoringModel
from pharmacrm.keyaccounts.scoring import SHIPPED_PROGRAMMES
from pharmacrm.servicedesk.models import ImprovementAction

from .eval_fixtures import *  # noqa: F403  (fixtures)
from .eval_fixtures import CONFIGURE_ROLES, EVALUATION_ROLES, H1_2026, H2_2025, RUN_ROLES

ROLES = [r.value for r in Role]
EN = {"HTTP_ACCEPT_LANGUAGE": "en"}


@pytest.fixture
def evaluated(purchases, users):
    """Two half-years evaluated (协和 C → D, 华山 B → A, 长征 B → A) and the identification run."""
    evaluation.run(ModelKind.EVALUATION, as_of=H2_2025)
    evaluation.run(ModelKind.EVALUATION, as_of=H1_2026)
    evaluation.run(ModelKind.CANDIDATE, as_of=H1_2026)
    return {name: Score.objects.get(institution=inst, kind="evaluation", period="2026H1")
            for name, inst in purchases.items()}  # fmt: skip


def text(response) -> str:
    import re

    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", response.content.decode()))


# --- who may open what ---------------------------------------------------------------------------------


@pytest.mark.parametrize("role", ROLES)
def test_each_role_gets_the_pages_its_capabilities_allow(role, client_for, evaluated):
    c = client_for(role)
    xiehe, huashan = evaluated["xiehe"], evaluated["huashan"]
    reading = 200 if role in EVALUATION_ROLES else 403
    for url in (
        "/keyaccounts/evaluations/",
        "/keyaccounts/candidates/",
        "/keyaccounts/models/",
        f"/keyaccounts/evaluations/{xiehe.pk}/",
        f"/keyaccounts/evaluations/customer/{xiehe.institution_id}/",
    ):
        assert c.get(url).status_code == reading, url
    # the rep sees the customers of the North team's territory only (协和 in Beijing, not 华山 in Shanghai)
    outside = 404 if role == "rep" else reading
    assert c.get(f"/keyaccounts/evaluations/{huashan.pk}/").status_code == outside
    assert c.get(f"/keyaccounts/evaluations/customer/{huashan.institution_id}/").status_code == outside
    configuring = 200 if role in CONFIGURE_ROLES else 403
    assert c.get("/keyaccounts/models/evaluation/").status_code == configuring
    candidate = Score.objects.get(institution_id=huashan.institution_id, kind="candidate")
    running = 302 if role in RUN_ROLES else 403
    assert c.post(f"/keyaccounts/evaluations/{huashan.pk}/action/").status_code == running
    assert c.post("/keyaccounts/evaluations/run/", {"kind": "candidate"}).status_code == running
    influencing = 302 if role in CONFIGURE_ROLES else 403  # CONFIGURE_SCORING or PROPOSE_KEY_ACCOUNTS
    assert c.post(f"/keyaccounts/evaluations/{candidate.pk}/influence/", {"kol_count": 1}).status_code == influencing


def test_a_rep_sees_only_scores_of_customers_in_scope(client_for, evaluated):
    page = text(client_for("rep").get("/keyaccounts/evaluations/?klass=A", **EN))
    assert "复旦大学附属华山医院" not in page and "上海长征医院" not in page
    page = text(client_for("rep").get("/keyaccounts/evaluations/?klass=D", **EN))
    assert "北京协和医院" in page


# --- results by class -----------------------------------------------------------------------------------


def test_results_show_counts_per_class_with_movement_and_the_list_of_a_class(client_for, evaluated):
    response = client_for("manager").get("/keyaccounts/evaluations/", **EN)
    assert response.status_code == 200
    counts = response.context["counts"]
    assert response.context["period"] == "2026H1"  # the latest period
    assert counts["A"] == {"total": 2, "up": 2, "down": 0, "same": 0, "new": 0}
    assert counts["D"] == {"total": 1, "up": 0, "down": 1, "same": 0, "new": 0}
    assert counts["B"]["total"] == counts["C"]["total"] == 0
    page = text(response)
    # the default model's reward programme in the reader's language (it read 年度优秀客户奖 on an English page)
    assert "复旦大学附属华山医院 90.60" in page and "5%" in page and "Annual outstanding customer award" in page

    d_list = client_for("manager").get("/keyaccounts/evaluations/?klass=D", **EN)
    action = ImprovementAction.objects.get(institution=evaluated["xiehe"].institution)
    assert action.number in text(d_list)  # the D customer's improvement action, linked
    # an earlier period stays available
    older = client_for("manager").get("/keyaccounts/evaluations/?period=2025H2&klass=C", **EN)
    assert older.context["counts"]["C"]["new"] == 1 and "北京协和医院 45.67" in text(older)


def test_the_results_page_costs_a_fixed_number_of_queries(client_for, evaluated, django_assert_max_num_queries):
    c = client_for("manager")
    with django_assert_max_num_queries(16):
        assert c.get("/keyaccounts/evaluations/?klass=D").status_code == 200


def test_run_now_runs_the_evaluation_and_says_what_it_did(client_for, purchases, users):
    response = client_for("analyst").post("/keyaccounts/evaluations/run/", {"kind": "evaluation"}, follow=True, **EN)
    run = EvaluationRun.objects.get()
    assert run.model.kind == "evaluation" and run.created_by == users["analyst"] and run.customers == 3
    assert f"{run.customers} customers scored" in text(response)


# --- drill-down ------------------------------------------------------------------------------------------


def test_the_drill_down_explains_every_component_and_adds_them_up(client_for, evaluated):
    xiehe = evaluated["xiehe"]
    response = client_for("kam").get(f"/keyaccounts/evaluations/{xiehe.pk}/", **EN)
    page = text(response)
    assert "Purchase amount 25.00 35% 8.75 ¥250,000 of the ¥1,000,000 reference over 12 months" in page
    assert "Purchase frequency 12.50 20% 2.50 3 orders of 24 over 12 months" in page
    assert "Satisfaction 60.00 20% 12.00 no survey answered: default 60 Credit" in page
    assert "Credit status 52.00 25% 13.00 paid on time 40%, ¥50,000 overdue" in page
    assert "8.75 + 2.50 + 12.00 + 13.00 = 36.25" in page
    # history of every period, movement from C
    assert [h.period for h in response.context["history"]] == ["2026H1", "2025H2"]
    assert response.context["move"] == "down"


def test_a_candidates_drill_down_explains_influence_growth_and_cooperation(client_for, evaluated):
    score = Score.objects.get(institution=evaluated["huashan"].institution, kind="candidate")
    response = client_for("analyst").get(f"/keyaccounts/evaluations/{score.pk}/", **EN)
    page = text(response)
    assert "Grade III-A, 1500 beds, 5 specialties, 0 KOLs" in page and "grade Grade" not in page
    assert "buying for 12 months (reference 60)" in page
    assert "no purchases in the window before: new business" in page
    assert "28.80 + 15.00 + 3.00 + 21.25 + 15.00 = 83.05" in page
    # the analyst may propose it
    assert f"/keyaccounts/proposals/new/?institution={score.institution_id}" in response.content.decode()


def test_an_improvement_action_is_opened_from_the_drill_down_once(client_for, evaluated, users):
    huashan = evaluated["huashan"]
    c = client_for("manager")
    c.post(f"/keyaccounts/evaluations/{huashan.pk}/action/")
    again = c.post(f"/keyaccounts/evaluations/{huashan.pk}/action/", follow=True, **EN)

    action = ImprovementAction.objects.get(institution=huashan.institution)
    assert action.title.endswith("[2026H1]") and action.created_by == users["manager"]
    assert "is still open" in text(again)
    assert AuditEntry.objects.filter(object_type="servicedesk.improvementaction", object_id=str(action.pk),
                                     action="create").exists()  # fmt: skip
    # the run of the period does not open a second one
    evaluation.run(ModelKind.EVALUATION, as_of=H1_2026)
    assert ImprovementAction.objects.filter(institution=huashan.institution).count() == 1


# --- market influence ------------------------------------------------------------------------------------


def test_market_influence_is_saved_audited_and_guarded_by_its_version(client_for, evaluated, users):
    institution = evaluated["huashan"].institution
    score = Score.objects.get(institution=institution, kind="candidate")
    url = f"/keyaccounts/evaluations/{score.pk}/influence/"
    c = client_for("analyst")
    assert (
        c.post(url, {"kol_count": 2, "kol_names": "王医生, 李医生", "assessment": 85, "notes": "n"}).status_code == 302
    )
    influence = MarketInfluence.objects.get(institution=institution)
    assert (influence.kol_count, influence.assessment, influence.version) == (2, 85, 1)
    created = AuditEntry.objects.get(object_type="keyaccounts.marketinfluence", action="create")
    assert created.changes["assessment"] == [None, 85] and created.actor == users["analyst"]

    stale = c.post(url, {"kol_count": 3, "assessment": 70, "version": 0}, **EN)
    assert stale.status_code == 409 and "Someone else changed the market influence" in text(stale)
    ok = c.post(url, {"kol_count": 3, "assessment": 70, "kol_names": "王医生, 李医生", "notes": "n", "version": 1})
    assert ok.status_code == 302
    updated = AuditEntry.objects.get(object_type="keyaccounts.marketinfluence", action="update")
    assert updated.changes == {"assessment": [85, 70], "kol_count": [2, 3]}
    bad = c.post(url, {"kol_count": 3, "assessment": 101, "version": 2}, **EN)
    assert bad.status_code == 400 and MarketInfluence.objects.get().assessment == 70

    # the next identification run scores influence from the assessment: 70 × 0.25 = 17.50
    evaluation.run(ModelKind.CANDIDATE, as_of=H1_2026)
    rescored = Score.objects.get(pk=score.pk)
    influence_part = next(c for c in rescored.components if c["name"] == "influence")
    assert (influence_part["value"], influence_part["contribution"]) == ("70.00", "17.50")


# --- scoring models --------------------------------------------------------------------------------------


def test_the_models_page_shows_weights_thresholds_and_results_by_class(client_for, db, users):
    page = text(client_for("auditor").get("/keyaccounts/models/", **EN))
    assert "Purchase amount 35 35%" in page and "Class A from 80" in page and "Annual outstanding customer award" in page
    assert "Candidate from 70" in page
    assert "Change the model" not in page  # read-only for the auditor


def test_the_default_models_names_read_in_each_users_language_until_renamed(client_for, evaluated):
    """The default models were stored as 客户评估 / 重点客户识别 and an English page read "model 客户评估 v1"."""
    c = client_for("analyst")
    assert ScoringModel.objects.get(kind="evaluation", active=True).name == "客户评估"
    xiehe = evaluated["xiehe"]
    for url in ("/keyaccounts/models/", "/keyaccounts/evaluations/", f"/keyaccounts/evaluations/{xiehe.pk}/"):
        english = text(c.get(url, **EN))
        assert "客户评估" not in english and "Customer evaluation" in english, url
        traditional = text(c.get(url, HTTP_ACCEPT_LANGUAGE="zh-hant"))
        assert "客户评估" not in traditional and "客戶評估" in traditional, url
    assert "Key-account identification" in text(c.get("/keyaccounts/models/", **EN))
    assert "客户评估" in text(c.get("/keyaccounts/models/"))
    form = c.get("/keyaccounts/models/evaluation/", **EN).content.decode()
    assert "each user reads it in their own language" in form
    assert c.get("/api/v1/scoring-models/evaluation/", **EN).json()["label"] == "Customer evaluation"
    # a name a manager gives is shown to everyone as written
    assert c.post("/keyaccounts/models/evaluation/", _model_post(name="2027 年客户评估")).status_code == 302
    assert "2027 年客户评估" in text(c.get("/keyaccounts/models/", **EN))


def _model_post(**changes) -> dict:
    data = {
        "name": "Customer evaluation", "version": 1, "weight_amount": 40, "weight_frequency": 20,
        "weight_satisfaction": 20, "weight_credit": 20, "param_window_months": 12, "param_amount_reference": 800000,
        "param_orders_reference": 24, "param_default_satisfaction": 60, "param_default_credit": 60,
        "threshold_A": 85, "threshold_B": 60, "threshold_C": 40, "apply_tiers": "on",
    }  # fmt: skip
    for k, tier, discount, programme in (("A", "vip", 5, "年度优秀客户奖"), ("B", "regular", 2, ""),
                                         ("C", "regular", 0, ""), ("D", "regular", 0, "")):  # fmt: skip
        data |= {f"tier_{k}": tier, f"discount_{k}": discount, f"programme_{k}": programme}
    data["action_D"] = "on"
    return data | changes


def test_saving_a_model_makes_a_new_version(client_for, db, users):
    c = client_for("analyst")
    response = c.post("/keyaccounts/models/evaluation/", _model_post())
    assert response.status_code == 302
    model = ScoringModel.objects.get(kind="evaluation", active=True)
    assert model.version == 2 and model.weights["amount"] == 40 and model.thresholds["A"] == 85
    assert model.params["amount_reference"] == 800000 and model.benefits["D"]["action"] is True
    assert ScoringModel.objects.filter(kind="evaluation").count() == 2  # version 1 kept for its scores
    page = text(c.get("/keyaccounts/models/", **EN))
    assert "Class A from 85" in page


def test_model_errors_are_shown_with_the_group_they_concern(client_for, db, users):
    c = client_for("manager")
    c.get("/keyaccounts/models/evaluation/")  # creates version 1
    response = c.post("/keyaccounts/models/evaluation/", _model_post(threshold_A=50), **EN)
    assert response.status_code == 400
    assert response.context["form"].group_errors == {
        "thresholds": ["Give the lowest score of classes A, B and C, with A above B above C."]
    }
    assert 'id="errors-thresholds"' in response.content.decode()
    response = c.post("/keyaccounts/models/evaluation/", _model_post(weight_amount=0, weight_frequency=0,
                      weight_satisfaction=0, weight_credit=0, discount_A=60), **EN)  # fmt: skip
    assert set(response.context["form"].group_errors) == {"weights", "benefits"}
    assert ScoringModel.objects.filter(kind="evaluation").count() == 1


def test_a_stale_model_form_is_refused(client_for, db, users):
    c = client_for("manager")
    assert c.post("/keyaccounts/models/evaluation/", _model_post()).status_code == 302
    stale = c.post("/keyaccounts/models/evaluation/", _model_post(threshold_A=90), **EN)
    assert stale.status_code == 409 and "Someone else saved version 2" in text(stale)
    assert ScoringModel.objects.get(active=True, kind="evaluation").thresholds["A"] == 85


def test_a_model_saved_by_someone_else_after_the_form_was_checked_is_not_overwritten(db, users):
    """The version the user loaded is checked again where the new version is written: a change based on a version
    no longer in force is refused with the model in force now, and nothing is written."""
    evaluation.active_model(ModelKind.EVALUATION)  # version 1, what both managers loaded
    evaluation.save_model(users["manager"], ModelKind.EVALUATION, {"thresholds": {"A": 85}}, version=1)
    with pytest.raises(evaluation.ModelChanged) as refused:
        evaluation.save_model(users["analyst"], ModelKind.EVALUATION, {"thresholds": {"A": 90}}, version=1)
    assert refused.value.current.version == 2
    assert list(ScoringModel.objects.filter(kind="evaluation").values_list("version", flat=True)) == [2, 1]
    assert ScoringModel.objects.get(active=True, kind="evaluation").thresholds["A"] == 85


@pytest.mark.postgresql
@pytest.mark.django_db(transaction=True)
def test_two_managers_saving_the_model_at_once_get_one_version_and_a_conflict(users, monkeypatch):
    """Both requests pass the version check before either has written (the page's check and the model's rules
    are done when the other one saves): one version is saved, the other manager is told that someone else saved
    it and keeps their input — no server error, no second "version 2"."""
    import threading

    from django.db import connection
    from django.test import Client

    from pharmacrm.keyaccounts import scoring

    evaluation.active_model(ModelKind.EVALUATION)  # version 1, what both managers loaded
    both_checked = threading.Barrier(2, timeout=20)
    original = scoring.validate_model

    def validate_then_wait(*args, **kwargs):
        errors = original(*args, **kwargs)
        both_checked.wait()  # both have read version 1 and checked their change before either writes
        return errors

    monkeypatch.setattr(scoring, "validate_model", validate_then_wait)
    results: list = [None, None]
    clients = [Client(), Client()]
    clients[0].force_login(users["manager"])
    clients[1].force_login(users["analyst"])

    def post(index: int, threshold: int):
        try:
            results[index] = clients[index].post("/keyaccounts/models/evaluation/", _model_post(threshold_A=threshold),
                                                 **EN)  # fmt: skip
        finally:
            connection.close()

    threads = [threading.Thread(target=post, args=(0, 85)), threading.Thread(target=post, args=(1, 90))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(r.status_code for r in results) == [302, 409]
    refused = next(r for r in results if r.status_code == 409)
    assert "Someone else saved version 2 of this model" in text(refused)
    saved = ScoringModel.objects.get(active=True, kind="evaluation")
    assert saved.version == 2 and ScoringModel.objects.filter(kind="evaluation").count() == 2
    assert saved.thresholds["A"] == (90 if refused is results[0] else 85)  # the change of the one who saved


# --- Customer 360 block -----------------------------------------------------------------------------------


def test_the_customer_block_shows_the_latest_class_history_and_candidate_score(client_for, evaluated):
    xiehe = evaluated["xiehe"]
    c = client_for("kam")
    detail = c.get(f"/customers/institutions/{xiehe.institution_id}/")
    assert f"/keyaccounts/evaluations/customer/{xiehe.institution_id}/" in detail.content.decode()
    response = c.get(f"/keyaccounts/evaluations/customer/{xiehe.institution_id}/", **EN)
    page = text(response)
    assert f"/keyaccounts/evaluations/{xiehe.pk}/" in response.content.decode()
    assert "Latest evaluation 2026H1: D 36.25" in page and "2025H2 45.67 C" in page
    assert "Key-account score 2026-06: 47.38" in page
    assert "<polyline" in response.content.decode()
    assert 'id="eval-interim"' not in response.content.decode()  # 2026H1 is the period in force: no interim mark


def test_the_customer_block_reads_with_a_full_width_colon_in_chinese(client_for, evaluated):
    """The 360 block read 最近评估 2026H1: D (an ASCII colon after Chinese words)."""
    xiehe = evaluated["xiehe"]
    page = text(client_for("kam").get(f"/keyaccounts/evaluations/customer/{xiehe.institution_id}/"))
    assert "最近评估 2026H1： D 36.25" in page and "2026H1:" not in page


def test_the_customer_block_marks_an_interim_standing_and_shows_the_class_in_force(client_for, evaluated):
    """Today's run scores the current half-year, a period under way: its score is an interim standing, and the
    block says so and shows 2026H1's class, which decides the tier (it showed "Latest evaluation 2026H2: C" alone)."""
    xiehe = evaluated["xiehe"]
    evaluation.run(ModelKind.EVALUATION)
    response = client_for("kam").get(f"/keyaccounts/evaluations/customer/{xiehe.institution_id}/", **EN)
    html, page = response.content.decode(), text(response)
    assert 'id="eval-interim"' in html and "interim standing" in page
    assert "In force (2026H1, the last period evaluated in full: it decides the tier, discount level and " \
           "improvement actions): D 36.25" in page  # fmt: skip


def test_the_shipped_reward_programmes_read_in_each_users_language_until_renamed(client_for, evaluated):
    """年度优秀客户奖 and 采购额达标奖 ship with the default model: an English or 繁體 page showed them in Simplified
    Chinese. A programme a manager names is shown to everyone as typed; the API keeps the stored name in `programme`
    (its filter) and gives the reader's in `programme_label`."""
    from django.utils import translation

    with translation.override("zh-hant"):  # 年度優秀客戶獎 (the catalogue's translation)
        traditional_name = str(SHIPPED_PROGRAMMES["annual_excellence"][1])
    c = client_for("analyst")
    huashan = evaluated["huashan"]
    for url in ("/keyaccounts/models/", "/keyaccounts/evaluations/", f"/keyaccounts/evaluations/{huashan.pk}/"):
        english = text(c.get(url, **EN))
        assert "年度优秀客户奖" not in english and "Annual outstanding customer award" in english, url
        traditional = text(c.get(url, HTTP_ACCEPT_LANGUAGE="zh-hant"))
        assert "年度优秀客户奖" not in traditional and traditional_name in traditional, url
        assert "年度优秀客户奖" in text(c.get(url, HTTP_ACCEPT_LANGUAGE="zh-hans")), url
    assert "Purchase target award" in text(c.get("/keyaccounts/models/", **EN))
    row = c.get(f"/api/v1/evaluations/{huashan.pk}/", **EN).json()
    assert (row["programme"], row["programme_label"]) == ("年度优秀客户奖", "Annual outstanding customer award")
    # renamed by a manager: shown as typed, in every language
    assert c.post("/keyaccounts/models/evaluation/", _model_post(programme_A="金牌伙伴计划")).status_code == 302
    page = text(c.get("/keyaccounts/models/", **EN))
    assert "金牌伙伴计划" in page and "Annual outstanding customer award" not in page.split("Version history")[0]


def test_run_now_says_its_counts_in_the_singular_and_the_plural(client_for, purchases, users):
    """The notice read "1 tier changes", "1 improvement actions opened": one plural per count."""
    response = client_for("analyst").post("/keyaccounts/evaluations/run/", {"kind": "evaluation"}, follow=True, **EN)
    run = EvaluationRun.objects.get()
    assert (run.customers, run.tier_changes, run.actions) == (3, 2, 1)
    assert (f"The customer evaluation of {run.period} ran: 3 customers scored, 2 tier changes, 1 improvement action "
            "opened." in text(response))  # fmt: skip
