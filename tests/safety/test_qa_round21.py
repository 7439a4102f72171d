"""Safety defects found by the twenty-first review round (safety)."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from pharmacrm.safety import services
from pharmacrm.safety.models import Flag, SafetyClock
from tests.safety.conftest import sign_code as _sign_code

pytestmark = pytest.mark.django_db


def _dizzy_ticket(users, xiehe):
    from pharmacrm.servicedesk import services as desk

    return desk.create_ticket(users["agent"], {
        "subject": "用药咨询", "description": "我父亲吃了你们的降压药以后有点头晕。", "channel": "email",
        "category": "other", "institution": xiehe, "reply_email": "liu@example.com", "assignee": users["agent"],
    })  # fmt: skip


def test_a_death_told_on_a_ticket_already_waiting_for_triage_reaches_pv_within_hours(users, xiehe):
    """The ticket was flagged for a dizziness (one working day to reach PV); an hour later the daughter writes that
    her father died. The net saw the death — but the flag was already pending, so it only gained the new words:
    the hand-off stayed one working day and nobody was told, though a death must reach PV within four hours."""
    from pharmacrm.notify.models import Notification
    from pharmacrm.servicedesk import conversation

    ticket = _dizzy_ticket(users, xiehe)
    flag = Flag.objects.get(ticket=ticket)
    assert not Notification.objects.filter(kind="safety.serious").exists()
    conversation.receive_inbound(ticket, body="我父亲昨天晚上没抢救过来，人走了。", sender="liu@example.com")
    handoff = SafetyClock.objects.get(flag=flag, kind="handoff")
    assert handoff.due_at <= timezone.now() + services.SERIOUS_HANDOFF
    assert handoff.next_check_at is not None and handoff.next_check_at <= handoff.due_at
    assert Notification.objects.filter(recipient=users["pv"], kind="safety.serious").exists()
    assert Notification.objects.filter(recipient=users["manager"], kind="safety.serious").exists()
    # a further message about the same death does not tell everyone again
    conversation.receive_inbound(ticket, body="人已经去世了，你们要给个说法。", sender="liu@example.com")
    assert Notification.objects.filter(recipient=users["pv"], kind="safety.serious").count() == 1



def test_the_words_of_a_later_message_on_a_pending_flag_reach_triage_and_the_case(users, xiehe):
    """A second e-mail on a ticket waiting for triage adds its terms to the flag, but its words were dropped: the
    triage excerpt and the narrative of the case PV opens from the flag kept only the first message."""
    from pharmacrm.servicedesk import conversation

    ticket = _dizzy_ticket(users, xiehe)
    conversation.receive_inbound(ticket, body="今天早上他全身起了红疹子，还很痒。", sender="liu@example.com")
    flag = Flag.objects.get(ticket=ticket)
    assert "全身起了红疹子" in flag.excerpt
    case = services.confirm_flag(users["pv"], flag)
    assert "头晕" in case.narrative and "全身起了红疹子" in case.narrative
    assert case.narrative.count("有点头晕") == 1


def _expedited_flag(xml: bytes) -> str:
    from lxml import etree

    root = etree.fromstring(xml)
    return root.xpath("//h:observationEvent[h:code/@code='23']/h:value/@value", namespaces={"h": "urn:hl7-org:v3"})[0]


def test_the_icsr_says_whether_chinas_rules_expedite_the_case_as_its_clock_does(make_case):
    """C.1.7 "local criteria for an expedited report" follows the case's clock. Since session 61 (safety 0017, GVP 2021
    art. 135) a new (unexpected) reaction that is not serious is a 30-day report like any other non-serious one: not
    expedited; a serious one is (15 days)."""
    from pharmacrm.safety.e2b import export
    from tests.safety.conftest import COMPLETE

    new = make_case(expectedness="unexpected")
    assert {c.rule.code for c in new.clocks.filter(kind="report")} == {"CN-OTHER"}
    assert _expedited_flag(export.release([new], purpose="partner").xml) == "false"
    serious = make_case(reactions=[{**COMPLETE["reactions"][0], "hospitalisation": True}])
    assert {c.rule.code for c in serious.clocks.filter(kind="report")} == {"CN-NEW-SERIOUS"}
    assert _expedited_flag(export.release([serious], purpose="partner").xml) == "true"


@pytest.mark.parametrize("text", [
    "吃完药以后一点胃口都没有",  # loss of appetite: no lexicon word, and the frame read 没有 as a "no"
    "吃了药以后不疼了，可是起了一身疹子",  # the pain went, a rash came: still a reaction
])
def test_the_net_catches_a_loss_of_appetite_after_the_drug(text):
    from pharmacrm.safety.screen import screen

    result = screen(text)
    assert result.signal and result.kind == "adverse_reaction", (text, result)


@pytest.mark.parametrize("text", [
    "用了一个月，没发现有过敏现象",  # 没发现 is a "no" like 未发现
    "我妈吃了以后头不晕了",  # the drug worked: the symptom it treats is gone
    "吃了药以后已经不咳嗽了",
    "吃了药以后胃没那么疼了",
    "我对青霉素过敏，能吃你们的这个头孢吗？",  # an allergy history asked before use
])
def test_the_net_does_not_flag_a_no_or_a_symptom_that_went_away(text):
    """Each raised a flag for PV to dismiss: a reaction denied with 没发现, a treated symptom said to be gone, an
    allergy history asked about before taking the drug."""
    from pharmacrm.safety.screen import screen

    assert not screen(text).signal, text


def test_the_triage_queue_lists_a_reported_death_before_an_older_rash(users, xiehe, client_for):
    """The queue was sorted by receipt alone: a death told an hour ago (four hours to reach PV) sat below every
    older flag with a whole working day left, at the bottom of a long queue."""
    from pharmacrm.servicedesk import services as desk

    now = timezone.now()
    rash = desk.create_ticket(users["agent"], {
        "subject": "用药后皮疹", "description": "患者服用后出现全身皮疹。", "channel": "phone", "category": "other",
        "institution": xiehe, "received_at": now - dt.timedelta(hours=2),
    })  # fmt: skip
    death = desk.create_ticket(users["agent"], {
        "subject": "投诉", "description": "我父亲吃了你们的药，昨天人走了。", "channel": "phone", "category": "other",
        "institution": xiehe, "received_at": now - dt.timedelta(hours=1),
    })  # fmt: skip
    page = client_for("pv").get("/safety/triage/").content.decode()
    assert page.index(death.number) < page.index(rash.number)


def test_a_closed_quality_complaint_keeps_what_it_was_closed_with(users, client_for):
    """A quality complaint closes only with its batch, the investigation outcome and the recall decision — yet once
    closed, "Update the investigation" still saved: the batch could be wiped and a class II recall turned into
    "not decided" on a closed complaint, without reopening it (and without a reason)."""
    from django.core.exceptions import ValidationError

    pv = users["pv"]
    case = services.create_case(pv, {"kind": "quality", "reporter_name": "药剂科", "quality": {"defect": "片剂变色"}})
    services.update_quality(pv, case, {"batch": "B1", "investigation_outcome": "留样不合格", "recall_decision": "class_2",
                                       "recall_reason": "同批次多起投诉"})  # fmt: skip
    case = services.set_status(pv, case, "closed")
    with pytest.raises(ValidationError) as refused:
        services.update_quality(pv, case, {"batch": "", "recall_decision": ""}, version=case.version)
    assert "status" in refused.value.message_dict
    case.refresh_from_db()
    assert (case.quality.batch, case.quality.recall_decision) == ("B1", "class_2")
    page = client_for("pv").get(f"/safety/cases/{case.pk}/").content.decode()
    assert 'id="quality-edit"' not in page


def test_a_report_sent_before_the_follow_up_arrived_does_not_meet_the_follow_ups_clock(make_case, users):
    """The initial report went to the NMPA on day 10 and PV records it on day 15, after a follow-up arrived on day
    12. The submission met the follow-up's clock too and marked the case "submitted" — though the report could
    not contain information that reached the company two days later: the follow-up report was silently forgotten."""
    pv = users["pv"]
    now = timezone.now()
    case = make_case(received_at=now - dt.timedelta(days=15))
    services.add_follow_up(pv, case, {"patient_weight_kg": "65"}, received_at=now - dt.timedelta(days=3),
                           summary="医院补充了体重", version=case.version)  # fmt: skip
    case.refresh_from_db()
    sent = now - dt.timedelta(days=5)
    submission = services.record_submission(pv, case, {"channel": "nmpa", "submitted_at": sent},
                                            otp_code=_sign_code(pv))  # fmt: skip
    clocks = {c.case_version.sequence: c for c in SafetyClock.objects.filter(case=case, kind="report")}
    assert clocks[0].met_at == sent.replace(microsecond=0)  # kept to the second, as the deadlines are
    assert clocks[1].met_at is None and clocks[1].next_check_at is not None  # the follow-up is still owed
    assert submission.case_version.sequence == 0  # what it reported: the version known when it was sent
    case.refresh_from_db()
    assert case.status != "submitted"


def _dose_units(xml: bytes) -> list[str]:
    from lxml import etree

    return etree.fromstring(xml).xpath("//h:doseQuantity/@unit", namespaces={"h": "urn:hl7-org:v3"})


@pytest.mark.parametrize(("written", "ucum"), [("毫克", "mg"), ("片", "{DF}"), ("粒", "{DF}"), ("毫升", "mL"),
                                               ("国际单位", "[iU]"), ("mg", "mg")])
def test_a_dose_unit_written_in_chinese_goes_out_as_its_ucum_code(make_case, written, ucum):
    """"2 片" or "500 毫克" is how a Chinese case gives the dose: the ICSR carried unit="片" — valid against the schema,
    but G.k.4.r.1b is a constrained UCUM code, so the regulator's gateway rejects the report."""
    from pharmacrm.safety.e2b import export
    from tests.safety.conftest import COMPLETE

    case = make_case(drugs=[{**COMPLETE["drugs"][0], "dose": "2", "dose_unit": written}])
    assert _dose_units(export.release([case], purpose="partner").xml) == [ucum]


def test_a_dose_unit_with_no_ucum_code_is_named_before_the_export(make_case):
    from pharmacrm.safety.e2b import export
    from tests.safety.conftest import COMPLETE

    case = make_case(drugs=[{**COMPLETE["drugs"][0], "dose": "1", "dose_unit": "g"}])
    case.drugs.update(dose_unit="小勺")  # as an incoming ICSR keeps it (typed on the form, it is refused there)
    with pytest.raises(export.ExportRefused) as refused:
        export.release([case], purpose="partner")
    assert [p.field for p in refused.value.problems] == ["drugs[0].dose_unit"]


def test_a_submitted_case_found_serious_goes_back_to_being_assessed(make_case, users):
    """The 30-day report went out; PV then corrects the case — the patient had been admitted to hospital. A
    15-day clock opens for the serious report, but the case still read "submitted" in the list, among the
    cases with nothing left to do."""
    pv = users["pv"]
    case = make_case(received_at=timezone.now() - dt.timedelta(days=2))
    services.record_submission(pv, case, {"channel": "nmpa"}, otp_code=_sign_code(pv))
    case.refresh_from_db()
    assert case.status == "submitted"
    reaction = {**case.reactions.values("verbatim", "meddra_version", "meddra_llt", "outcome")[0],
                "hospitalisation": True}  # fmt: skip
    case = services.update_case(pv, case, {"reactions": [reaction]}, version=case.version)
    assert SafetyClock.objects.filter(case=case, kind="report", met_at__isnull=True, rule__code="CN-NEW-SERIOUS").exists()
    assert case.status == "assessing"


@pytest.mark.parametrize("text", [
    "打完针胳膊疼了好几天",  # the arm an injection went into
    "打完针屁股一直疼，还有个硬块",
    "我阿媽食完啲藥之後冇胃口",  # Cantonese: no appetite since the medicine
])
def test_the_net_catches_pain_where_the_injection_went_and_a_cantonese_loss_of_appetite(text):
    from pharmacrm.safety.screen import screen

    result = screen(text)
    assert result.signal and result.kind == "adverse_reaction", (text, result)
