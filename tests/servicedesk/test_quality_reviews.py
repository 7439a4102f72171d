"""Quality reviews (服务质检, seed 000 §8.1 服务准确率): who reviews which ticket (reviewers any, a team lead their
teams', nobody their own, only handled tickets), the findings required and sent to the agent, one review per ticket
(a double submission is the same review; a second reviewer is refused), corrections with optimistic locking and the
audit trail, the accuracy on the service performance page, export and API judged against a goal, the quality page
per role, "review a random ticket", and the API.

The hand-computed November of test_performance.py: handled (resolved) in November are T1 and T2 (a1, 一组), T4 (a2,
一组) and T8 (b1, 二组); T3 and T5 are open; lead1 (an agent) leads 一组."""

# ruff: noqa: F811 — the fixtures imported from test_performance.py are parameters here
from __future__ import annotations

import io
from decimal import Decimal

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.urls import reverse

from pharmacrm.core.models import AuditEntry
from pharmacrm.customers.services import ConflictError
from pharmacrm.notify.models import Notification
from pharmacrm.servicedesk import goals, quality
from pharmacrm.servicedesk.models import QualityReview
from pharmacrm.servicedesk.performance import parse_period
from tests.servicedesk.test_performance import (  # noqa: F401 — fixtures
    API,
    EXPORT,
    PAGE,
    api_client,
    desk,
    export_rows,
    november,
    page_client,
    report,
)

pytestmark = pytest.mark.django_db

QUALITY = reverse("servicedesk:quality")
NEXT = reverse("servicedesk:quality-next")
REVIEWS_API = "/api/v1/service/quality-reviews/"
GOOD = {"accurate": True, "compliant": True, "complete": True, "courteous": True, "comment": ""}
WRONG = {**GOOD, "accurate": False, "comment": "告知的储存温度有误：应为2–8℃冷藏。"}


@pytest.fixture(autouse=True)
def _english():
    from django.utils import translation

    with translation.override("en"):
        yield


def form(values: dict) -> dict:
    """The ticket page's review form as posted (its fields carry the prefix "quality")."""
    return {f"quality-{k}": ("yes" if v else "no") if isinstance(v, bool) else v for k, v in values.items()}


# --- who reviews what ------------------------------------------------------------------------------------------


def test_a_product_expert_reviews_and_the_accuracy_follows(users, november):
    expert = users["expert"]
    quality.review(expert, november["T1"], GOOD)
    quality.review(expert, november["T2"], WRONG)
    rows = {r.label: r for r in report(users["manager"]).rows}
    assert (rows["a1"].reviewed, rows["a1"].accurate, rows["a1"].accuracy) == (2, 1, 50)
    assert rows["a2"].reviewed == 0 and rows["a2"].accuracy is None  # nothing reviewed: not 0%
    totals = report(users["manager"]).totals
    assert (totals.reviewed, totals.accuracy) == (2, 50)
    # the accuracy is about the tickets received in the period, as every other figure: October's T7 is not November's
    quality.review(expert, november["T7"], WRONG)
    assert report(users["manager"]).totals.reviewed == 2
    assert report(users["manager"], period="2026-10").totals.accuracy == 0
    # and the twelve-period trend follows each month's reviews
    trend = {p["period"]: (p["reviewed"], p["accuracy"]) for p in report(users["manager"]).trend}
    assert (trend["2026-11"], trend["2026-10"], trend["2026-09"]) == ((2, 50.0), (1, 0.0), (0, None))


def test_who_may_review_which_ticket(users, desk, november):
    t1, t3, t8 = november["T1"], november["T3"], november["T8"]
    # a team lead reviews their team's tickets, not another team's
    assert quality.may_review(desk["lead"], t1)
    assert "service managers, product experts" in quality.refusal(desk["lead"], t8)
    # an agent who leads no team, an analyst, an auditor, pharmacovigilance: no
    for who in (desk["b1"], users["analyst"], users["auditor"], users["pv"], users["rep"]):
        with pytest.raises(PermissionDenied):
            quality.review(who, t1, GOOD)
    # nor who replied to the customer on it: the lead answered T4 during an escalation
    from pharmacrm.servicedesk.models import TicketEvent

    TicketEvent.objects.create(ticket=november["T4"], at=november["T4"].received_at, kind="reply", actor=desk["lead"])
    with pytest.raises(PermissionDenied, match="handled themselves"):
        quality.review(desk["lead"], november["T4"], GOOD)
    # a ticket still open is not reviewed yet
    with pytest.raises(PermissionDenied, match="once it is resolved"):
        quality.review(users["expert"], t3, GOOD)
    # nobody reviews their own ticket, a reviewer neither
    t1.assignee = users["expert"]
    t1.save(update_fields=["assignee"])
    with pytest.raises(PermissionDenied, match="handled themselves"):
        quality.review(users["expert"], t1, GOOD)
    assert not QualityReview.objects.exists()


def test_a_finding_needs_its_words_and_reaches_the_agent(users, desk, november):
    with pytest.raises(ValidationError) as err:
        quality.review(users["expert"], november["T2"], {**WRONG, "comment": "  "})
    assert list(err.value.message_dict) == ["comment"]
    with pytest.raises(ValidationError) as err:
        quality.review(users["expert"], november["T2"], {"accurate": True, "comment": ""})
    assert set(err.value.message_dict) == {"compliant", "complete", "courteous"}
    assert not QualityReview.objects.exists()
    quality.review(users["expert"], november["T2"], WRONG)
    note = Notification.objects.get(recipient=desk["a1"], kind="quality.finding")
    # in the agent's language (zh-hans), and the findings stay on the ticket: free text is not mailed
    assert note.title == f"工单 {november['T2'].number} 质检有未达标项"
    assert note.body == "1 项质检标准未达标，质检发现见工单。" and "2–8℃" not in note.body
    assert note.url.endswith("#quality")
    # a clean review tells nobody anything
    quality.review(users["expert"], november["T1"], GOOD)
    assert Notification.objects.filter(kind="quality.finding").count() == 1


def test_one_review_per_ticket_and_a_double_submission_is_the_same(users, desk, november):
    first = quality.review(users["expert"], november["T1"], GOOD)
    again = quality.review(users["expert"], november["T1"], GOOD)  # a double click
    assert again.pk == first.pk and QualityReview.objects.count() == 1
    with pytest.raises(ValidationError, match="reviewed already"):
        quality.review(users["admin"], november["T1"], WRONG)
    created = AuditEntry.objects.filter(object_type="servicedesk.qualityreview", action="create")
    assert created.count() == 1
    assert created.get().changes["ticket"] == [None, november["T1"].number]


def test_corrections_are_locked_audited_and_only_the_reviewers_or_a_managers(users, desk, make_user, november):
    from pharmacrm.core.roles import Role

    review = quality.review(users["expert"], november["T1"], GOOD)
    other_expert = make_user("expert2", Role.EXPERT)
    with pytest.raises(PermissionDenied):
        quality.correct(other_expert, review, WRONG, version=1)
    quality.correct(users["expert"], review, WRONG, version=1)
    assert review.version == 2 and not QualityReview.objects.get().accurate
    stale = QualityReview.objects.get()
    stale.version = 1
    with pytest.raises(ConflictError):
        quality.correct(users["admin"], stale, GOOD, version=1)
    # a service manager corrects another's review — not the manager of this desk, who answered every ticket of it
    assert not quality.may_correct(users["manager"], QualityReview.objects.get())
    quality.correct(users["admin"], QualityReview.objects.get(), {**GOOD, "comment": "复核：答复无误。"}, version=2)
    entries = list(AuditEntry.objects.filter(object_type="servicedesk.qualityreview", action="update").order_by("id"))
    assert [e.actor.username for e in entries] == ["expert", "admin"]
    assert entries[0].changes["accurate"] == [True, False]
    assert entries[1].changes["accurate"] == [False, True]
    assert quality.may_correct(users["admin"], QualityReview.objects.get())


# --- the accuracy on the performance page, export and API, against its goal -----------------------------------


def test_the_accuracy_on_the_performance_page_export_and_api_judged_by_its_goal(users, november):
    quality.review(users["expert"], november["T1"], GOOD)
    quality.review(users["expert"], november["T2"], WRONG)
    goals.save(users["manager"], {"accuracy": "90"}, since=november["T7"].received_at)
    assert goals.judge(report(users["manager"]).totals, goals.current()) == {"accuracy": False}
    page = page_client(users["manager"]).get(PAGE, {"period": "2026-11"})
    html = page.content.decode()
    assert "Accuracy (reviewed)" in html and "≥ 90%" in html
    # the trend chart draws the accuracy on the percentage scale, with its goal
    line = next(s for s in page.context["chart"]["series"] if s["name"] == "Accuracy (%)")
    assert (line["data"][-1], line["axis"], line["goal"], line["goal_label"]) == (50.0, 1, 90.0, "≥ 90%")
    november_row = html.split('<tr data-period="2026-11">', 1)[1].split("</tr>", 1)[0]  # and its table
    assert november_row.endswith('<td class="num">50% <span class="muted small">(2)</span></td>')
    assert 'goal-missed" title="Goal ≥ 90%: missed">50% <span class="muted small">(2)</span>' in html
    rows = export_rows(page_client(users["manager"]).get(EXPORT, {"period": "2026-11"}).content)
    head = rows[2]
    total = next(r for r in rows if r[0] == "Total")
    assert total[head.index("Reviewed for quality")] == 2 and total[head.index("Accuracy (%)")] == 50.0
    body = api_client(users["manager"]).get(API, {"period": "2026-11"}).json()
    assert body["totals"]["accuracy"] == 50.0 and body["totals"]["quality_reviewed"] == 2
    assert "accuracy" in body["totals"]["goals_missed"]


# --- the web pages ---------------------------------------------------------------------------------------------


def test_the_ticket_page_review_form_records_refuses_and_shows(users, desk, november):
    t2 = november["T2"]
    url = reverse("servicedesk:ticket-quality", args=[t2.pk])
    expert = page_client(users["expert"])
    assert 'id="quality-form"' in expert.get(reverse("servicedesk:ticket", args=[t2.pk])).content.decode()
    r = expert.post(url, form({**WRONG, "comment": ""}))
    assert r.status_code == 400 and "Write down what was found" in r.content.decode()
    assert not QualityReview.objects.exists()
    r = expert.post(url, form(WRONG))
    assert r.status_code == 302 and r["Location"].endswith("#quality")
    # the agent reads the review of their ticket; an agent of the other team does not see it
    page = page_client(desk["a1"]).get(reverse("servicedesk:ticket", args=[t2.pk])).content.decode()
    assert 'id="quality-result"' in page and "2–8℃" in page and 'id="quality-form"' not in page
    page = page_client(desk["b1"]).get(reverse("servicedesk:ticket", args=[t2.pk])).content.decode()
    assert 'id="quality"' not in page
    # the agent cannot post a review of their own ticket's neighbour, nor correct theirs
    assert page_client(desk["a1"]).post(url, form(GOOD)).status_code == 403
    # a stale correction keeps what was typed and says why
    review = QualityReview.objects.get()
    quality.correct(users["expert"], review, GOOD, version=1)
    r = expert.post(url, form({**WRONG, "version": 1}))
    html = r.content.decode()
    assert r.status_code == 409 and "Someone else corrected this review" in html
    assert 'name="quality-version" value="2"' in html  # submitting again corrects the version seen now
    assert "2–8℃" in html.split('id="quality-form"', 1)[1]  # the findings typed are kept
    assert QualityReview.objects.get().accurate
    # a form loaded before the review existed (no version) never overwrites it: the manager is told it exists
    r = page_client(users["admin"]).post(url, form(WRONG))
    assert r.status_code == 400 and "reviewed already (by expert)" in r.content.decode()
    assert QualityReview.objects.get().accurate
    # … and the form shown is the correction of that review (its version, the input kept): sent again, it corrects
    current = QualityReview.objects.get()
    assert f'name="quality-version" value="{current.version}"' in r.content.decode()
    r = page_client(users["admin"]).post(url, form({**WRONG, "version": current.version}))
    assert r.status_code == 302 and not QualityReview.objects.get().accurate


@pytest.mark.parametrize(
    "role, status, may_review",
    [("admin", 200, True), ("manager", 200, True), ("expert", 200, True), ("analyst", 200, False),
     ("auditor", 200, False), ("agent", 200, False), ("kam", 200, False), ("support", 200, False),
     ("aftersales", 200, False), ("rep", 200, False), ("pv", 403, False)],
)  # fmt: skip
def test_the_quality_page_per_role(users, november, role, status, may_review):
    r = page_client(users[role]).get(QUALITY, {"period": "2026-11"})
    assert r.status_code == status
    if status == 200:
        assert ('id="review-next"' in r.content.decode()) == may_review


def test_the_quality_page_counts_per_agent_and_an_agent_sees_only_their_own(users, desk, november):
    quality.review(users["expert"], november["T1"], GOOD)
    quality.review(users["expert"], november["T2"], WRONG)
    quality.review(users["expert"], november["T4"], GOOD)
    rows, total = quality.agent_rows(users["manager"], report(users["manager"]).period)
    by = {r.label: r for r in rows}
    assert (by["a1"].handled, by["a1"].reviewed, by["a1"].coverage, by["a1"].accuracy) == (2, 2, 100, 50)
    assert (by["b1"].handled, by["b1"].reviewed, by["b1"].coverage) == (1, 0, 0)
    assert (total.handled, total.reviewed, total.rates["accurate"], total.rates["compliant"]) == (4, 3, Decimal("66.7"), 100)
    html = page_client(desk["a2"]).get(QUALITY, {"period": "2026-11"}).content.decode()
    assert f'data-agent="{desk["a2"].pk}"' in html and f'data-agent="{desk["a1"].pk}"' not in html
    assert november["T4"].number in html and november["T2"].number not in html
    findings = page_client(users["manager"]).get(QUALITY, {"period": "2026-11", "show": "findings"}).content.decode()
    assert november["T2"].number in findings and november["T1"].number not in findings
    # the team lead sees their team's agents only
    html = page_client(desk["lead"]).get(QUALITY, {"period": "2026-11"}).content.decode()
    assert f'data-agent="{desk["a1"].pk}"' in html and f'data-agent="{desk["b1"].pk}"' not in html


def test_review_a_random_ticket_draws_from_the_unreviewed_and_never_ones_own(users, desk, november):
    from pharmacrm.servicedesk.models import TicketEvent

    # the lead replied to the customer on T4: never drawn for them
    TicketEvent.objects.create(ticket=november["T4"], at=november["T4"].received_at, kind="reply", actor=desk["lead"])
    lead = page_client(desk["lead"])
    # 一组's handled tickets: T1, T2 (T4 the lead answered, T8 is 二组's, T3 and T5 are open)
    expected = {reverse("servicedesk:ticket", args=[november[k].pk]) + "#quality" for k in ("T1", "T2")}
    seen = set()
    for _ in range(60):  # random draws: both show up long before (a miss has a chance of 2⁻⁵⁹)
        r = lead.get(NEXT, {"period": "2026-11"})
        assert r.status_code == 302 and r["Location"] in expected
        seen.add(r["Location"])
        if seen == expected:
            break
    assert seen == expected
    for k in ("T1", "T2"):
        quality.review(users["expert"], november[k], GOOD)
    r = lead.get(NEXT, {"period": "2026-11"})
    assert r["Location"].startswith(QUALITY)  # nothing left: back to the page, with a message
    assert page_client(desk["a1"]).get(NEXT, {"period": "2026-11"}).status_code == 403


def test_review_a_random_ticket_samples_the_least_covered_agent_first(users, november):
    """November's handled tickets: a1's T1 and T2, a2's T4, b1's T8. With T1 and T4 reviewed (a1 at 50 %, a2 at
    100 %), every draw is b1's T8; once T8 is reviewed, a1's T2 (a1 50 %, the others 100 %)."""
    expert = page_client(users["expert"])
    quality.review(users["expert"], november["T1"], GOOD)
    quality.review(users["expert"], november["T4"], GOOD)
    t8 = reverse("servicedesk:ticket", args=[november["T8"].pk]) + "#quality"
    assert {expert.get(NEXT, {"period": "2026-11"})["Location"] for _ in range(12)} == {t8}
    quality.review(users["expert"], november["T8"], GOOD)
    t2 = reverse("servicedesk:ticket", args=[november["T2"].pk]) + "#quality"
    assert {expert.get(NEXT, {"period": "2026-11"})["Location"] for _ in range(6)} == {t2}
    # an agent chosen on the page ("Review one") draws that agent's tickets, whatever the others' coverage
    period = parse_period("2026-11")
    assert quality.next_to_review(users["expert"], period, agent=november["T8"].assignee_id) is None  # all reviewed
    assert quality.next_to_review(users["expert"], period, agent=november["T2"].assignee_id) == november["T2"]


def test_tied_agents_are_each_drawn_as_likely_whatever_their_ticket_count(users, november, monkeypatch):
    """Nothing reviewed: a1 (two tickets), a2 and b1 (one each) are tied at 0 %. The draw picks one of the three
    agents, then one of that agent's tickets — a1 is not drawn twice as often for having two."""
    offered = []

    def choice(seq):
        offered.append(list(seq))
        return seq[-1]

    monkeypatch.setattr(quality.random, "choice", choice)
    drawn = quality.next_to_review(users["expert"], parse_period("2026-11"))
    agents = sorted({november[k].assignee_id for k in ("T1", "T4", "T8")})
    assert offered == [agents]  # each tied agent once: the same chance for each
    assert drawn.assignee_id == agents[-1]


def test_a_team_lead_keeps_their_review_once_the_ticket_moved_to_another_team(users, desk, november):
    """lead1 reviews a2's T4 in 一组; the ticket then moves to 二组. lead1 still reads the review (page, API) and may
    correct it — it is their judgement — while b1, of 二组, does not read it."""
    t4 = november["T4"]
    review = quality.review(desk["lead"], t4, WRONG)
    t4.team = desk["two"]
    t4.save(update_fields=["team"])
    review.refresh_from_db()
    assert quality.may_read(desk["lead"], t4, review) and quality.may_correct(desk["lead"], review)
    assert [x["id"] for x in api_client(desk["lead"]).get(REVIEWS_API).json()["results"]] == [review.pk]
    page = page_client(desk["lead"]).get(reverse("servicedesk:ticket", args=[t4.pk])).content.decode()
    assert 'id="quality-result"' in page and "2–8℃" in page and 'id="quality-form"' in page
    quality.correct(desk["lead"], review, GOOD, version=review.version)
    assert QualityReview.objects.get().accurate
    assert api_client(desk["b1"]).get(REVIEWS_API).json()["results"] == []
    # a reviewer with no team to lead any more reviews nothing, and corrects nothing
    desk["one"].lead = None
    desk["one"].save(update_fields=["lead"])
    fresh = type(desk["lead"]).objects.get(pk=desk["lead"].pk)
    assert not quality.may_correct(fresh, QualityReview.objects.get())


def test_appeals_waiting_of_any_period_and_after_a_merge(users, desk, november):
    """A manager opening the quality page in December finds November's open appeal under *Appeal waiting*, also
    once its ticket was merged into another."""
    from pharmacrm.servicedesk import linking

    review = quality.review(users["expert"], november["T2"], WRONG)
    quality.appeal(desk["a1"], review, "说明书第4节允许该用法。", version=review.version)
    december = page_client(users["admin"]).get(QUALITY, {"period": "2026-12", "show": "appeals"})
    assert [r.pk for r in december.context["page"].object_list] == [review.pk]
    linking.merge(users["manager"], november["T2"], november["T3"], reason="重复工单")
    assert [r.pk for r in quality.period_reviews(users["admin"], parse_period("2026-12"), appeals=True)] == [review.pk]
    assert not list(quality.period_reviews(users["admin"], parse_period("2026-12")))  # the period's list: none


def test_appeal_steps_are_refused_before_their_form_and_a_retried_decision_is_told(users, desk, november):
    review = quality.review(users["expert"], november["T2"], WRONG)
    appeal_url = reverse("servicedesk:ticket-quality-appeal", args=[november["T2"].pk])
    decide_url = reverse("servicedesk:ticket-quality-decide", args=[november["T2"].pk])
    # not the agent judged: 403 with the reason, an empty form or not (never the appeal form to fill in)
    for who in (desk["lead"], users["admin"]):
        r = page_client(who).post(appeal_url, {})
        assert r.status_code == 403 and "Only the agent a review judged may appeal it." in r.content.decode()
    quality.appeal(desk["a1"], review, "说明书第4节允许该用法。", version=review.version)
    r = page_client(desk["lead"]).post(decide_url, {})
    assert r.status_code == 403 and "An appeal is decided by a service manager" in r.content.decode()
    review.refresh_from_db()
    quality.decide_appeal(users["admin"], review, False, "答复与说明书不符。", version=review.version)
    review.refresh_from_db()
    with pytest.raises(PermissionDenied, match="decided already"):  # the same decision again: a double click
        quality.decide_appeal(users["admin"], review, False, "答复与说明书不符。", version=review.version)


def test_findings_of_control_characters_only_are_none_and_a_float_ticket_id_is_no_id(users, november):
    with pytest.raises(ValidationError) as err:
        quality.review(users["expert"], november["T2"], {**WRONG, "comment": "\u0001\u200b\u0002 "})
    assert set(err.value.message_dict) == {"comment"}
    kept = quality.review(users["expert"], november["T2"], {**WRONG, "comment": "批号\x01未登记\r\n第二行"})
    assert kept.comment == "批号未登记\n第二行"
    r = api_client(users["expert"]).post("/api/v1/service/quality-reviews/",
                                         {"ticket": november["T1"].pk + 0.5, **GOOD}, format="json")  # fmt: skip
    assert r.status_code == 400 and "ticket" in r.json() and not QualityReview.objects.filter(ticket=november["T1"])


# --- the API ---------------------------------------------------------------------------------------------------


def test_the_api_records_lists_and_corrects(users, desk, november):
    expert = api_client(users["expert"])
    body = {"ticket": november["T2"].pk, **WRONG}
    r = expert.post(REVIEWS_API, {**body, "comment": ""}, format="json")
    assert r.status_code == 400 and list(r.json()) == ["comment"]
    r = expert.post(REVIEWS_API, body, format="json")
    assert r.status_code == 201, r.content
    made = r.json()
    assert (made["ticket_number"], made["agent"], made["accurate"], made["version"]) == (
        november["T2"].number, desk["a1"].pk, False, 1)
    assert expert.post(REVIEWS_API, body, format="json").status_code == 200  # sent again: the same review
    assert api_client(desk["a1"]).post(REVIEWS_API, {"ticket": november["T1"].pk, **GOOD},
                                       format="json").status_code == 403  # fmt: skip
    assert api_client(users["auditor"], ).post(REVIEWS_API, {"ticket": november["T1"].pk, **GOOD},
                                               format="json").status_code == 403  # fmt: skip
    # who reads which: the agent theirs, another agent nothing, the auditor everything
    assert [x["id"] for x in api_client(desk["a1"]).get(REVIEWS_API).json()["results"]] == [made["id"]]
    assert api_client(desk["b1"]).get(REVIEWS_API).json()["results"] == []
    assert api_client(desk["b1"]).get(f"{REVIEWS_API}{made['id']}/").status_code == 404
    assert api_client(users["auditor"]).get(REVIEWS_API, {"period": "2026-11", "findings": "true"}).json()["count"] == 1
    assert api_client(users["auditor"]).get(REVIEWS_API, {"period": "2026-10"}).json()["count"] == 0
    assert api_client(users["auditor"]).get(REVIEWS_API, {"period": "2026-13"}).status_code == 400
    url = f"{REVIEWS_API}{made['id']}/"
    assert expert.patch(url, {"accurate": True, "comment": ""}, format="json").status_code == 400  # no version
    r = expert.patch(url, {**GOOD, "version": 1}, format="json")
    assert r.status_code == 200 and r.json()["version"] == 2 and r["ETag"] == '"2"'
    r = expert.patch(url, {"accurate": False, "comment": "x", "version": 1}, format="json")
    assert r.status_code == 409


def test_a_ticket_reopened_after_its_review(users, desk, november):
    from pharmacrm.servicedesk import services
    from pharmacrm.servicedesk.choices import Status

    t1 = november["T1"]
    review = quality.review(users["expert"], t1, WRONG)
    assert review.agent == desk["a1"]
    services.transition(users["manager"], t1, Status.IN_PROGRESS)  # reopened
    services.assign(users["manager"], t1, assignee=desk["a2"])
    t1.refresh_from_db()
    assert t1.assignee == desk["a2"]
    period = report(users["manager"]).period
    rows = {r.label: r for r in quality.agent_rows(users["manager"], period)[0]}
    # handled now: T2 (a1), T4 (a2), T8 (b1); the reopened T1's review is not counted as coverage
    assert all(r.reviewed <= r.handled for r in rows.values())
    # nor in the performance page's accuracy, its rows, totals and trend alike: the two pages agree
    rep = report(users["manager"])
    assert rep.totals.reviewed == 0 and rep.totals.accuracy is None
    assert all(r.reviewed == 0 for r in rep.rows) and rep.trend[-1]["reviewed"] == 0
    # the review is still corrected by its reviewer, and read by the agent it judged
    quality.correct(users["expert"], review, GOOD, version=1)
    assert list(quality.reviews_for(desk["a1"])) == [review] == list(quality.reviews_for(desk["a2"]))
    with pytest.raises(PermissionDenied, match="once it is resolved"):
        quality.review(users["admin"], t1, GOOD)
    # the manager recorded the first responses of this desk: never their reviewer
    with pytest.raises(PermissionDenied, match="handled themselves"):
        quality.review(users["manager"], november["T2"], GOOD)


def test_the_export_holds_the_pages_figures_and_reviews_in_scope_and_is_audited(users, desk, november):
    quality.review(users["expert"], november["T1"], GOOD)
    quality.review(users["expert"], november["T2"], WRONG)
    # a finding pasted from a Word document may hold a control character no workbook can hold (\x0b)
    quality.review(users["expert"], november["T8"], {**GOOD, "comment": "=HYPERLINK(\"http://x\")\x0b批号"})
    url = reverse("servicedesk:quality-export")
    r = page_client(users["manager"]).get(url, {"period": "2026-11"})
    assert r.status_code == 200 and r["Content-Type"].startswith("application/vnd.openxmlformats")
    from openpyxl import load_workbook

    book = load_workbook(io.BytesIO(r.content))
    agents = [list(x) for x in book.worksheets[0].iter_rows(values_only=True)]
    assert agents[0][:2] == ["Quality reviews", "2026-11"]
    a1 = next(x for x in agents if x[0] == "a1")
    assert a1[:5] == ["a1", 2, 2, 100.0, 50.0]
    assert agents[-1][:3] == ["Total", 4, 3]
    reviews = [list(x) for x in book.worksheets[1].iter_rows(values_only=True)]
    assert reviews[0][:5] == ["Ticket", "Subject", "Received", "Agent", "Agent judged"]
    by_number = {x[0]: x for x in reviews[1:]}
    assert set(by_number) == {november[k].number for k in ("T1", "T2", "T8")}
    assert by_number[november["T2"].number][3:5] == ["a1", "a1"]
    assert by_number[november["T2"].number][7:] == ["No", "Yes", "Yes", "Yes", WRONG["comment"], None]  # no appeal
    # a finding typed as "=…" is text in the sheet, never a formula it runs
    row = 2 + [x[0] for x in reviews[1:]].index(november["T8"].number)
    cell = book.worksheets[1].cell(row=row, column=12)
    assert (cell.value, cell.data_type) == ('=HYPERLINK("http://x")批号', "s")
    entry = AuditEntry.objects.filter(action="export", object_repr="quality reviews").get()
    assert entry.actor == users["manager"] and (entry.extra["rows"], entry.extra["period"]) == (3, "2026-11")
    # an agent exports their own row and reviews only; pharmacovigilance nothing
    own = load_workbook(io.BytesIO(page_client(desk["a1"]).get(url, {"period": "2026-11"}).content))
    assert {x[0] for x in list(own.worksheets[1].iter_rows(values_only=True))[1:]} == {
        november["T1"].number, november["T2"].number}
    assert page_client(users["pv"]).get(url, {"period": "2026-11"}).status_code == 403


def test_a_reassigned_tickets_review_names_both_the_agent_now_and_the_agent_judged(users, desk, november):
    """a2's T4 is reviewed, then reopened work moves it to a1. The per-agent figures follow the ticket (a1 now holds
    it), and every list says whom the review judged: the page under the agent, the export's *Agent judged*, the
    API's `agent` beside `assignee`."""
    t4 = november["T4"]
    review = quality.review(users["expert"], t4, WRONG)
    t4.assignee = desk["a1"]
    t4.save(update_fields=["assignee"])
    page = page_client(users["manager"]).get(QUALITY, {"period": "2026-11", "agent": desk["a1"].pk})
    html = page.content.decode()
    row = html.split(f'data-review="{review.pk}"', 1)[1].split("</tr>", 1)[0]
    assert "a1" in row and f'data-judged="{desk["a2"].pk}"' in row and "Judged: a2" in row
    rows = page_client(users["manager"]).get(QUALITY, {"period": "2026-11"}).content.decode()
    other = rows.split('id="quality-reviews"', 1)[1]
    assert other.count("data-judged=") == 1  # only the reassigned ticket's review says so
    from openpyxl import load_workbook

    book = load_workbook(io.BytesIO(page_client(users["manager"]).get(
        reverse("servicedesk:quality-export"), {"period": "2026-11"}).content))  # fmt: skip
    sheet = [list(x) for x in book.worksheets[1].iter_rows(values_only=True)]
    assert next(x for x in sheet if x[0] == t4.number)[3:5] == ["a1", "a2"]
    body = api_client(users["manager"]).get(REVIEWS_API, {"agent": desk["a1"].pk}).json()
    assert [(x["agent"], x["assignee"]) for x in body["results"]] == [(desk["a2"].pk, desk["a1"].pk)]
    assert api_client(users["manager"]).get(REVIEWS_API, {"agent": desk["a2"].pk}).json()["count"] == 0


# --- appeals (质检申诉) ------------------------------------------------------------------------------------------


def test_the_agent_appeals_once_and_a_service_manager_decides(users, desk, november):
    t2, t1 = november["T2"], november["T1"]
    review = quality.review(users["expert"], t2, WRONG)
    clean = quality.review(users["expert"], t1, GOOD)
    # only the agent judged, only against a finding, with a reason
    for who, match in ((desk["b1"], "Only the agent"), (users["expert"], "Only the agent")):
        with pytest.raises(PermissionDenied, match=match):
            quality.appeal(who, review, "不服", version=1)
    with pytest.raises(PermissionDenied, match="nothing to appeal"):
        quality.appeal(desk["a1"], clean, "不服", version=1)
    with pytest.raises(ValidationError) as err:
        quality.appeal(desk["a1"], review, "  ", version=1)
    assert list(err.value.message_dict) == ["appeal"]
    quality.appeal(desk["a1"], review, "说明书写明15–25℃保存，答复无误。", version=1)
    assert review.appeal_status == "open" and review.version == 2
    # the reviewer and the service managers who may decide are told (the manager answered these tickets: not them)
    told = set(Notification.objects.filter(kind="quality.appeal").values_list("recipient__username", flat=True))
    assert told == {"admin", "expert"}
    with pytest.raises(PermissionDenied, match="appealed already"):
        quality.appeal(desk["a1"], review, "再次申诉", version=2)
    # while it waits, the reviewer does not correct the review: the decision does
    with pytest.raises(PermissionDenied, match="was appealed"):
        quality.correct(users["expert"], review, GOOD, version=2)
    for who in (users["expert"], desk["a1"], users["manager"], desk["lead"]):
        assert not quality.may_decide(who, review)
    # an accepted appeal never makes the review harsher: a criterion met stays met
    with pytest.raises(ValidationError) as err:
        quality.decide_appeal(users["admin"], review, True, "改判", {**GOOD, "accurate": True, "courteous": False},
                              version=2)  # fmt: skip
    assert list(err.value.message_dict) == ["courteous"]
    with pytest.raises(ValidationError, match="changes the judgement"):
        quality.decide_appeal(users["admin"], review, True, "核实", {k: getattr(review, k) for k in quality.CRITERIA},
                              version=2)  # fmt: skip
    with pytest.raises(ValidationError) as err:
        quality.decide_appeal(users["admin"], review, True, "", {**GOOD}, version=2)
    assert list(err.value.message_dict) == ["appeal_answer"]
    with pytest.raises(ConflictError):
        quality.decide_appeal(users["admin"], review, True, "核实说明书", {**GOOD}, version=1)
    quality.decide_appeal(users["admin"], review, True, "核实说明书，储存条件答复正确，改判。", {**GOOD}, version=2)
    review.refresh_from_db()
    assert (review.appeal_status, review.accurate, review.appeal_decided_by) == ("accepted", True, users["admin"])
    assert report(users["admin"]).totals.accuracy == 100  # the accuracy follows the decision
    entry = AuditEntry.objects.filter(object_type="servicedesk.qualityreview", actor=users["admin"]).get()
    assert entry.changes["accurate"] == [False, True] and entry.changes["appeal_status"] == ["open", "accepted"]
    note = Notification.objects.get(recipient=desk["a1"], kind="quality.appeal_decided")
    assert note.title == f"您对工单 {t2.number} 质检的申诉成立" and note.body == "裁定结果及理由见工单。"
    # decided: it stands (no second appeal, no correction)
    assert quality.appeal_refusal(desk["a1"], review) and not quality.may_correct(users["expert"], review)


def test_a_rejected_appeal_leaves_the_review_and_the_pages_show_it(users, desk, november):
    t4 = november["T4"]
    review = quality.review(users["expert"], t4, WRONG)
    quality.review(users["expert"], november["T2"], WRONG)  # a finding nobody appealed: not on the appeals list
    url = reverse("servicedesk:ticket", args=[t4.pk])
    agent = page_client(desk["a2"])
    assert 'id="quality-appeal-form"' in agent.get(url).content.decode()
    r = agent.post(reverse("servicedesk:ticket-quality-appeal", args=[t4.pk]), {"appeal-appeal": "", "appeal-version": 1})
    assert r.status_code == 400 and not QualityReview.objects.get(pk=review.pk).appeal_status
    r = agent.post(reverse("servicedesk:ticket-quality-appeal", args=[t4.pk]),
                   {"appeal-appeal": "客户确认已冷藏保存。", "appeal-version": 1})  # fmt: skip
    assert r.status_code == 302
    admin = page_client(users["admin"])
    html = admin.get(url).content.decode()
    assert 'id="quality-decision-form"' in html and "客户确认已冷藏保存。" in html
    listing = admin.get(QUALITY, {"period": "2026-11", "show": "appeals"}).content.decode()
    assert t4.number in listing and 'data-appeal="open"' in listing and november["T2"].number not in listing
    decide = reverse("servicedesk:ticket-quality-decide", args=[t4.pk])
    # the reviewer may not decide: told on the page, nothing changes
    fields = {f"decision-{k}": ("yes" if getattr(review, k) else "no") for k in quality.CRITERIA}
    r = page_client(users["expert"]).post(decide, {**fields, "decision-decision": "reject",
                                                  "decision-appeal_answer": "维持", "decision-version": 2})  # fmt: skip
    assert r.status_code == 403 and QualityReview.objects.get(pk=review.pk).appeal_status == "open"
    r = admin.post(decide, {**fields, "decision-decision": "reject", "decision-appeal_answer": "",
                            "decision-version": 2})  # fmt: skip
    assert r.status_code == 400
    r = admin.post(decide, {**fields, "decision-decision": "reject", "decision-appeal_answer": "录音显示未提示冷藏。",
                            "decision-version": 2})  # fmt: skip
    assert r.status_code == 302
    review.refresh_from_db()
    assert (review.appeal_status, review.accurate) == ("rejected", False)
    page = agent.get(url).content.decode()
    assert "录音显示未提示冷藏。" in page and 'id="quality-appeal-form"' not in page
    # the export carries the appeal's state
    from openpyxl import load_workbook

    book = load_workbook(io.BytesIO(admin.get(reverse("servicedesk:quality-export"), {"period": "2026-11"}).content))
    rows = {x[0]: x for x in book.worksheets[1].iter_rows(values_only=True)}
    assert rows[t4.number][-1] == "Appeal rejected" and rows[november["T2"].number][-1] in ("", None)
    # the reviewer's correction form is gone once appealed
    assert 'id="quality-form"' not in page_client(users["expert"]).get(url).content.decode()


def test_appeals_through_the_api(users, desk, november):
    review = quality.review(users["expert"], november["T2"], WRONG)
    base = f"{REVIEWS_API}{review.pk}/"
    assert api_client(desk["b1"]).post(f"{base}appeal/", {"appeal": "x", "version": 1}, format="json").status_code == 404
    r = api_client(desk["a1"]).post(f"{base}appeal/", {"appeal": "答复无误。", "version": 1}, format="json")
    assert r.status_code == 200 and r.json()["appeal_status"] == "open"
    r = api_client(users["expert"]).post(f"{base}decide-appeal/", {"accepted": False, "appeal_answer": "维持",
                                                                  "version": 2}, format="json")  # fmt: skip
    assert r.status_code == 403
    r = api_client(users["admin"]).post(f"{base}decide-appeal/", {"accepted": True, "appeal_answer": "改判",
                                                                 "version": 2}, format="json")  # fmt: skip
    assert r.status_code == 400 and set(r.json()) == set(quality.CRITERIA)
    criteria = dict.fromkeys(quality.CRITERIA, True)
    r = api_client(users["admin"]).post(f"{base}decide-appeal/", {"accepted": True, "appeal_answer": "改判",
                                                                 **criteria, "version": 2}, format="json")  # fmt: skip
    assert r.status_code == 200 and (r.json()["appeal_status"], r.json()["accurate"]) == ("accepted", True)


def test_who_reviews_no_ticket_is_refused_before_the_review_form(users, desk, november):
    """Found in session 57's sweep: an agent (who may see the ticket, not review it) posting an empty or wrong review
    form got 400 with the form's errors — the form to fill in — and no refused write in the trail."""
    url = reverse("servicedesk:ticket-quality", args=[november["T2"].pk])
    for who in (desk["a1"], desk["b1"], users["agent"]):
        r = page_client(who).post(url, {})
        assert r.status_code in (403, 404), (who, r.status_code)
        if r.status_code == 403:
            assert "Quality reviews are for service managers" in r.content.decode() or "Nobody reviews" in r.content.decode()
            assert AuditEntry.objects.filter(action="access_denied", actor=who, object_repr=url).exists()
    assert page_client(users["expert"]).post(url, {}).status_code == 400  # who may review still reads the form's errors
    assert not QualityReview.objects.exists()


def test_a_correction_an_appeal_and_a_decision_sent_twice_act_once_and_show_the_review(users, desk, november):
    """A double click on each: the second sending answered "someone else corrected this review" (409) or was refused
    (403, appealed / decided already); it now shows the review as the first one left it."""
    t4 = november["T4"]
    review = quality.review(users["expert"], t4, WRONG)
    updates = AuditEntry.objects.filter(object_type="servicedesk.qualityreview", action="update").count
    expert = page_client(users["expert"])
    url = reverse("servicedesk:ticket-quality", args=[t4.pk])
    sent = form({**WRONG, "comment": "应为2–8℃冷藏，未提示。", "version": review.version})
    assert expert.post(url, sent).status_code == 302
    again = expert.post(url, sent, follow=True)
    assert again.status_code == 200 and "Review corrected." in again.content.decode() and updates() == 1

    review.refresh_from_db()
    agent = page_client(desk["a2"])
    sent = {"appeal-appeal": "客户确认已冷藏保存。", "appeal-version": review.version}
    appeal_url = reverse("servicedesk:ticket-quality-appeal", args=[t4.pk])
    assert agent.post(appeal_url, sent).status_code == 302
    again = agent.post(appeal_url, sent, follow=True)
    assert again.status_code == 200 and "Appeal sent" in again.content.decode() and updates() == 2

    review.refresh_from_db()
    admin = page_client(users["admin"])
    fields = {f"decision-{k}": ("yes" if getattr(review, k) else "no") for k in quality.CRITERIA}
    sent = {**fields, "decision-decision": "reject", "decision-appeal_answer": "录音显示未提示冷藏。",
            "decision-version": review.version}  # fmt: skip
    decide_url = reverse("servicedesk:ticket-quality-decide", args=[t4.pk])
    assert admin.post(decide_url, sent).status_code == 302
    again = admin.post(decide_url, sent, follow=True)
    assert again.status_code == 200 and "Decision on the appeal recorded." in again.content.decode()
    assert updates() == 3


def test_a_correction_after_a_colleagues_is_still_a_conflict(users, desk, november):
    t4 = november["T4"]
    review = quality.review(users["expert"], t4, WRONG)
    url = reverse("servicedesk:ticket-quality", args=[t4.pk])
    sent = form({**WRONG, "comment": "应为2–8℃冷藏，未提示。", "version": review.version})
    assert page_client(users["admin"]).post(url, sent).status_code == 302  # a service manager corrects it

    assert page_client(users["expert"]).post(url, sent).status_code == 409
