"""The evaluation API: /api/v1/evaluations/ (and run/), /api/v1/keyaccounts/candidates/ and
/api/v1/scoring-models/<kind>/ — the contract other tools rely on (customer, score, components whose
contributions add up, "class"), the scope per role, and field-named validation errors."""

from __future__ import annotations

from decimal import Decimal

import pytest

from pharmacrm.core.roles import Role
from pharmacrm.keyaccounts import evaluation
from pharmacrm.keyaccounts.choices import ModelKind
from pharmacrm.keyaccounts.models import EvaluationRun, ScoringModel

from .eval_fixtures import *  # noqa: F403  (fixtures)
from .eval_fixtures import CONFIGURE_ROLES, EVALUATION_ROLES, H1_2026, H2_2025, RUN_ROLES

ROLES = [r.value for r in Role]


@pytest.fixture
def evaluated(purchases, users):
    evaluation.run(ModelKind.EVALUATION, as_of=H2_2025)
    evaluation.run(ModelKind.EVALUATION, as_of=H1_2026)
    evaluation.run(ModelKind.CANDIDATE, as_of=H1_2026)
    return purchases


def by_name(results: list[dict]) -> dict[str, dict]:
    return {r["customer_name"]: r for r in results}


def test_evaluations_carry_the_contract_fields_and_default_to_the_latest_period(api_for, evaluated):
    response = api_for("manager").get("/api/v1/evaluations/")
    assert response.status_code == 200
    data = response.json()
    assert data["count"] == 3
    xiehe = by_name(data["results"])["北京协和医院"]
    assert xiehe["customer"] == evaluated["xiehe"].pk and xiehe["period"] == "2026H1" and xiehe["as_of"] == "2026-06-30"
    assert (xiehe["score"], xiehe["class"], xiehe["previous_class"]) == ("36.25", "D", "C")
    assert (xiehe["discount"], xiehe["programme"]) == ("0.00", "")
    assert [(c["name"], c["value"], c["weight"], c["contribution"]) for c in xiehe["components"]] == [
        ("amount", "25.00", "0.3500", "8.75"), ("frequency", "12.50", "0.2000", "2.50"),
        ("satisfaction", "60.00", "0.2000", "12.00"), ("credit", "52.00", "0.2500", "13.00"),
    ]  # fmt: skip
    assert xiehe["components"][3]["explanation"] == "paid on time 40%, ¥50,000 overdue"
    for item in data["results"]:
        assert sum(Decimal(c["contribution"]) for c in item["components"]) == Decimal(item["score"])
    # best first
    assert [r["score"] for r in data["results"]] == ["90.60", "90.60", "36.25"]


def test_evaluation_filters(api_for, evaluated):
    api = api_for("analyst")
    assert [r["customer_name"] for r in api.get("/api/v1/evaluations/?class=D").json()["results"]] == ["北京协和医院"]
    older = api.get("/api/v1/evaluations/?period=2025H2").json()["results"]
    assert {r["customer_name"]: r["class"] for r in older} == {
        "北京协和医院": "C", "复旦大学附属华山医院": "B", "上海长征医院": "B"}  # fmt: skip
    one = api.get(f"/api/v1/evaluations/?customer={evaluated['huashan'].pk}").json()["results"]
    assert [(r["customer_name"], r["class"]) for r in one] == [("复旦大学附属华山医院", "A")]
    bad = api.get("/api/v1/evaluations/?class=E")
    assert bad.status_code == 400 and "class" in bad.json()


def test_candidates_carry_the_contract_fields(api_for, evaluated):
    api = api_for("analyst")
    data = api.get("/api/v1/keyaccounts/candidates/").json()
    assert data["count"] == 3 and data["results"][0]["period"] == "2026-06"
    huashan = by_name(data["results"])["复旦大学附属华山医院"]
    assert (huashan["score"], huashan["candidate"]) == ("83.05", True)
    assert [c["name"] for c in huashan["components"]] == ["amount", "frequency", "cooperation", "influence", "growth"]
    assert sum(Decimal(c["contribution"]) for c in huashan["components"]) == Decimal("83.05")
    assert "class" not in huashan
    only = api.get("/api/v1/keyaccounts/candidates/?candidate=true").json()["results"]
    assert [r["customer_name"] for r in only] == ["复旦大学附属华山医院"]  # not 长征, a key account


def test_a_rep_gets_only_customers_in_scope(api_for, evaluated):
    api = api_for("rep")
    assert [r["customer_name"] for r in api.get("/api/v1/evaluations/").json()["results"]] == ["北京协和医院"]
    assert [r["customer_name"] for r in api.get("/api/v1/keyaccounts/candidates/").json()["results"]] == [
        "北京协和医院"
    ]
    huashan = api_for("manager").get("/api/v1/evaluations/?class=A").json()["results"][0]["id"]
    assert api.get(f"/api/v1/evaluations/{huashan}/").status_code == 404


@pytest.mark.parametrize("role", ROLES)
def test_each_role_gets_the_endpoints_its_capabilities_allow(role, api_for, evaluated):
    api = api_for(role)
    reading = 200 if role in EVALUATION_ROLES else 403
    for url in ("/api/v1/evaluations/", "/api/v1/keyaccounts/candidates/", "/api/v1/scoring-models/",
                "/api/v1/scoring-models/evaluation/"):  # fmt: skip
        assert api.get(url).status_code == reading, url
    running = 201 if role in RUN_ROLES else 403
    assert api.post("/api/v1/evaluations/run/", {"kind": "candidate"}, format="json").status_code == running
    configuring = 200 if role in CONFIGURE_ROLES else 403
    put = api.put("/api/v1/scoring-models/candidate/", {"thresholds": {"candidate": 75}, "version": 1}, format="json")
    assert put.status_code == configuring


def test_run_returns_the_run(api_for, purchases, users):
    response = api_for("manager").post("/api/v1/evaluations/run/", {"kind": "evaluation"}, format="json")
    assert response.status_code == 201
    run = EvaluationRun.objects.get()
    body = response.json()
    assert (body["id"], body["kind"], body["period"], body["customers"], body["model_version"], body["trigger"]) == (
        run.pk, "evaluation", run.period, 3, 1, "on_demand")  # fmt: skip
    assert api_for("manager").post("/api/v1/evaluations/run/", {"kind": "x"}, format="json").status_code == 400


def test_a_scoring_model_is_changed_in_a_new_version(api_for, db, users):
    api = api_for("analyst")
    current = api.get("/api/v1/scoring-models/evaluation/").json()
    assert current["version"] == 1 and current["weights"] == {"amount": 35, "frequency": 20, "satisfaction": 20,
                                                              "credit": 25}  # fmt: skip
    response = api.put("/api/v1/scoring-models/evaluation/", {
        "weights": {"amount": 50, "frequency": 10, "satisfaction": 20, "credit": 20},
        "params": {"amount_reference": 500000}, "version": 1,
    }, format="json")  # fmt: skip
    assert response.status_code == 200, response.json()
    saved = response.json()
    assert saved["version"] == 2 and saved["shares"]["amount"] == "0.5000"
    assert saved["params"]["amount_reference"] == 500000 and saved["thresholds"] == {"A": 80, "B": 60, "C": 40}
    assert ScoringModel.objects.filter(kind="evaluation").count() == 2


def test_scoring_model_errors_are_field_named(api_for, db, users):
    api = api_for("manager")
    url = "/api/v1/scoring-models/evaluation/"
    r = api.put(url, {"thresholds": {"A": 50, "B": 60, "C": 40}, "version": 1}, format="json")
    assert r.status_code == 400 and list(r.json()) == ["thresholds"]
    r = api.put(url, {"weights": {"growth": 10}, "version": 1}, format="json")
    assert r.status_code == 400 and "growth" in r.json()["weights"][0]
    r = api.put(url, {"params": {"amount_reference": 0}, "version": 1}, format="json")
    assert r.status_code == 400 and list(r.json()) == ["params"]
    # named as the form names it, in the reader's language, never by its JSON key
    assert r.json()["params"] == ["Amount reference (yuan) must be a number above zero."]
    zh = api_for("manager", lang="zh-hans").put(url, {"params": {"amount_reference": 0}, "version": 1}, format="json")
    assert zh.json()["params"] == ["金额参照值（元） 须为大于零的数字。"]
    r = api.put(url, {"params": {"nonsense": 3}, "version": 1}, format="json")
    assert r.status_code == 400 and list(r.json()) == ["params"]
    r = api.put(url, {"benefits": {"A": {"tier": "key"}}, "version": 1}, format="json")
    assert r.status_code == 400 and list(r.json()) == ["benefits"]
    r = api.put(url, {"benefits": {"A": {"discount": 70}}, "version": 1}, format="json")
    assert r.status_code == 400 and list(r.json()) == ["benefits"]
    r = api.put(url, {"thresholds": {"A": 90, "B": 60, "C": 40}}, format="json")
    assert r.status_code == 400 and list(r.json()) == ["version"]
    r = api.put(url, {"thresholds": {"A": 90, "B": 60, "C": 40}, "version": 7}, format="json")
    assert r.status_code == 409 and r.json()["current_version"] == 1
    assert ScoringModel.objects.filter(kind="evaluation").count() == 1


def test_the_schema_documents_the_class_field(client, db):
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/json").json()
    props = schema["components"]["schemas"]["Evaluation"]["properties"]
    assert {"customer", "customer_name", "score", "components", "class", "previous_class", "discount",
            "programme", "period", "as_of"} <= set(props)  # fmt: skip
