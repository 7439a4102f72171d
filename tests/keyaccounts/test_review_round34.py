"""Defects of the customer evaluation found in review (session 34): figures of a score's detail rounded half to
even where the purchases pages round half up (四舍五入), the satisfaction explanation joined with an English
semicolon on a Chinese page, two first entries of a customer's market influence at once, and a department buying
on its own scored without its revisits, flagged a key-account candidate and named without its hospital."""

from __future__ import annotations

import datetime as dt

import pytest

from pharmacrm.keyaccounts import evaluation, scoring
from pharmacrm.keyaccounts.choices import ModelKind
from pharmacrm.keyaccounts.models import Score
from pharmacrm.sales import services as sales

from .eval_fixtures import *  # noqa: F403  (fixtures)
from .eval_fixtures import H1_2026, line

pytestmark = pytest.mark.django_db


def test_the_share_paid_on_time_reads_as_on_the_credit_panel(import_orders, xiehe, users):
    """389.70 of 400.00 paid on time is 0.97425 exactly: the credit panel (half up) said 0.9743, the evaluation's
    credit measure (Decimal's default, half to even) 0.9742 for the same customer and window."""
    import_orders([
        line("SO-R1", 1, "2026-03-01", xiehe, "P1", 1, "389.70", payment_due="2026-04-01", paid_date="2026-03-25"),
        line("SO-R2", 1, "2026-03-02", xiehe, "P1", 1, "10.30", payment_due="2026-04-02", paid_date="2026-04-12"),
    ])  # fmt: skip

    panel = sales.credit(xiehe.pk, today=H1_2026)
    evaluation.run(ModelKind.EVALUATION, as_of=H1_2026)
    score = Score.objects.get(institution=xiehe, kind=ModelKind.EVALUATION, period="2026H1")
    credit = next(c for c in score.components if c["name"] == "credit")

    assert str(panel.on_time_share) == "0.9743"
    assert credit["detail"]["on_time_share"] == "0.9743"  # was 0.9742


def test_the_satisfaction_and_growth_figures_are_rounded_half_up():
    """CSAT 4.125 (33 points from 8 surveys) reads 4.13, not 4.12; NPS 3.125 reads 3.13; growth 12.345 % reads
    12.35 %: as every figure of the pages is rounded (四舍五入)."""
    params = scoring.DEFAULT_PARAMS
    facts = scoring.Facts(csat_sum=33, csat_count=8, nps_promoters=1, nps_count=32,
                          amount_fen=224_690, previous_amount_fen=200_000)  # fmt: skip

    assert scoring.satisfaction(facts, params).detail["csat"] == "4.13"
    assert scoring.satisfaction(facts, params).detail["nps"] == "3.13"
    assert scoring.growth(facts, params).detail["growth_percent"] == "12.35"


def test_the_satisfaction_explanation_is_punctuated_in_the_readers_language():
    """CSAT and NPS in one explanation were joined with an English "; " on the Chinese drill-down, candidate list
    and API: “CSAT 5（1 份问卷）; NPS 100（1 份答复）”."""
    from django.utils import translation

    from pharmacrm.keyaccounts.views_eval import explain

    component = {"name": "satisfaction", "value": "100.00",
                 "detail": {"surveys": 1, "nps_answers": 1, "csat": "5.00", "nps": "100.00"}}  # fmt: skip

    assert explain(component) == "CSAT 5（1 份问卷）；NPS 100（1 份答复）"
    with translation.override("en"):
        assert explain(component) == "CSAT 5 from 1 survey; NPS 100 from 1 answer"
    only_csat = {**component, "detail": {"surveys": 2, "nps_answers": 0, "csat": "4.50"}}
    assert explain(only_csat) == "CSAT 4.5（2 份问卷）"


def _outcome(work) -> str:
    """What a save running into another one did: saved, or the name of the error it raised."""
    try:
        work()
    except Exception as e:  # noqa: BLE001  (the test asserts on which one)
        return type(e).__name__
    return "saved"


@pytest.mark.postgresql
@pytest.mark.django_db(transaction=True)
def test_two_first_entries_of_a_customers_market_influence_at_once(users, xiehe):
    """Two analysts (or a double click on Save) entering the KOLs of a customer that had none: neither found an
    entry to lock, both created one, and the second failed on the one-to-one — an error page. The second now
    waits for the first and is told that someone saved meanwhile (the page's 409), the first's entry kept."""
    from pharmacrm.keyaccounts.influence import save_influence
    from pharmacrm.keyaccounts.models import MarketInfluence
    from tests.concurrency import held_while

    second: list[str] = []
    held_while(
        lambda: save_influence(users["analyst"], xiehe, {"kol_names": "王医生、李医生"}, version=0),
        lambda: second.append(_outcome(
            lambda: save_influence(users["manager"], xiehe, {"kol_names": "赵医生"}, version=0))),
    )  # fmt: skip

    assert second == ["ConflictError"]  # was IntegrityError
    entry = MarketInfluence.objects.get(institution=xiehe)
    assert (entry.kol_names, entry.kol_count, entry.version) == ("王医生、李医生", 2, 1)


@pytest.mark.postgresql
@pytest.mark.django_db(transaction=True)
def test_a_kol_file_imported_while_the_first_entry_is_saved_does_not_wipe_it(users, xiehe):
    """The KOL import filled the cells a row leaves empty from the entry it had read, none: saved after a first
    entry made on the page meanwhile, it failed on the one-to-one (or, once the entry existed, would have wiped
    its names). The row is now reported, and the entry made on the page stays."""
    from django.core.files.uploadedfile import SimpleUploadedFile
    from django.utils import translation

    from pharmacrm.keyaccounts.influence import import_kols, save_influence
    from pharmacrm.keyaccounts.models import MarketInfluence
    from tests.concurrency import held_while

    upload = SimpleUploadedFile("kol.csv", f"统一社会信用代码,市场影响力评分\n{xiehe.credit_code},80\n".encode())
    result: list = []

    def imported():
        with translation.override("en"):
            result.append(import_kols(users["analyst"], upload))

    held_while(lambda: save_influence(users["manager"], xiehe, {"kol_names": "王医生、李医生"}, version=0), imported)

    assert result == [(0, [(2, "Someone else changed this record while you were editing it. Reload and apply "
                               "your changes again.")])]  # fmt: skip
    entry = MarketInfluence.objects.get(institution=xiehe)
    assert (entry.kol_names, entry.kol_count, entry.assessment) == ("王医生、李医生", 2, None)


def test_a_department_buying_on_its_own_is_scored_with_its_own_revisits(purchases, users, admin_user, import_orders):
    """协和's 心内科 has order lines of its own (its ERP code), so it is evaluated as a customer; its tickets' revisits
    were counted for the hospital only, and its own score said "no survey answered: default 60" beside two answered
    revisits. They count for both now: the department's satisfaction and, as before, its hospital's."""
    from django.utils import timezone

    from pharmacrm.customers import services as customers
    from pharmacrm.servicedesk.models import Survey

    from .test_lifecycle_fixes import ticket_for

    xiehe = purchases["xiehe"]
    cardiology = customers.create_institution(
        admin_user, {"name": "心内科", "kind": "department", "parent": xiehe, "external_id": "XH-XNK"}
    )
    import_orders([line("SO-K1", 1, "2026-04-10", "", "P1", 10, "100", external_id="XH-XNK",
                        payment_due="2026-05-10", paid_date="2026-05-01")])  # fmt: skip
    answered = timezone.make_aware(dt.datetime(2026, 5, 10, 10))
    for points in (5, 4):
        Survey.objects.create(ticket=ticket_for(users, cardiology), channel="phone", answered_at=answered, score=points)

    evaluation.run(ModelKind.EVALUATION, as_of=H1_2026)

    def satisfaction(institution) -> dict:
        score = Score.objects.get(institution=institution, kind=ModelKind.EVALUATION, period="2026H1")
        return next(c for c in score.components if c["name"] == "satisfaction")

    own = satisfaction(cardiology)
    assert not own.get("default")  # was the default 60
    assert (own["value"], own["detail"]["surveys"]) == ("87.50", 2)  # CSAT 4.5 → 87.5
    assert (satisfaction(xiehe)["value"], satisfaction(xiehe)["detail"]["surveys"]) == ("87.50", 2)
    # an update of the department alone (after an import of its orders) reads them too
    evaluation.run(ModelKind.EVALUATION, as_of=H1_2026, ids=[cardiology.pk])
    assert satisfaction(cardiology)["value"] == "87.50"


def test_a_department_buying_on_its_own_is_ranked_but_no_key_account_candidate(
    purchases, users, admin_user, import_orders, client_for
):
    """A department is never proposed (its hospital is), yet a department with order lines of its own reaching the
    threshold was flagged "candidate" with a "Propose" button whose proposal was then refused — and approving or
    de-listing it flagged it again. It keeps its rank and score, is no candidate, and is offered no proposal."""
    from pharmacrm.customers import services as customers

    xiehe = purchases["xiehe"]
    cardiology = customers.create_institution(
        admin_user, {"name": "心内科", "kind": "department", "parent": xiehe, "external_id": "XH-XNK"}
    )
    import_orders([line("SO-K1", 1, "2026-04-10", "", "P1", 10, "100", external_id="XH-XNK")])
    evaluation.save_model(users["manager"], ModelKind.CANDIDATE, {"thresholds": {"candidate": 10}})

    evaluation.run(ModelKind.CANDIDATE, as_of=H1_2026)

    own = Score.objects.get(institution=cardiology, kind=ModelKind.CANDIDATE)
    assert own.score >= 10 and not own.candidate  # was a candidate
    assert Score.objects.get(institution=xiehe, kind=ModelKind.CANDIDATE).candidate  # the hospital still is
    evaluation.refresh_candidate_flag(cardiology.pk)  # as after a listing or de-listing
    assert not Score.objects.get(pk=own.pk).candidate
    client = client_for("analyst")
    listing = client.get("/keyaccounts/candidates/")
    row = next(r for r in listing.context["rows"] if r.institution_id == cardiology.pk)
    assert f'href="{row.propose_url}"' not in listing.content.decode()
    detail = client.get(f"/keyaccounts/evaluations/{own.pk}/").content.decode()
    assert row.propose_url not in detail
    assert "高于阈值" in detail  # its score stands above the threshold all the same


def test_a_departments_scores_name_its_hospital(purchases, users, admin_user, import_orders, client_for):
    """Eleven hospitals have a 心内科: the results, the candidate list and the drill-down named a department buying on
    its own by its name alone, where the order list names it 北京协和医院 › 心内科."""
    from pharmacrm.customers import services as customers

    xiehe = purchases["xiehe"]
    cardiology = customers.create_institution(
        admin_user, {"name": "心内科", "kind": "department", "parent": xiehe, "external_id": "XH-XNK"}
    )
    import_orders([line("SO-K1", 1, "2026-04-10", "", "P1", 10, "100", external_id="XH-XNK",
                        payment_due="2026-05-10", paid_date="2026-05-01")])  # fmt: skip
    evaluation.run(ModelKind.EVALUATION, as_of=H1_2026)
    evaluation.run(ModelKind.CANDIDATE, as_of=H1_2026)
    score = Score.objects.get(institution=cardiology, kind=ModelKind.EVALUATION)
    client = client_for("analyst")

    results = client.get(f"/keyaccounts/evaluations/?period=2026H1&klass={score.klass}").content.decode()
    candidates = client.get("/keyaccounts/candidates/").content.decode()
    detail = client.get(f"/keyaccounts/evaluations/{score.pk}/").content.decode()

    for page in (results, candidates, detail):
        assert "北京协和医院 › 心内科" in page
    assert "<title>北京协和医院 › 心内科 · 2026H1" in detail
