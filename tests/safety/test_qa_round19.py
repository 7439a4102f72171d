"""Safety defects found by the nineteenth session's QA round (qa-safety)."""

from __future__ import annotations

import datetime as dt

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from pharmacrm.safety import services
from pharmacrm.safety.models import SafetyClock
from tests.safety.conftest import COMPLETE, sign_code

FATAL = [{"verbatim": "过敏性休克后死亡", "meddra_version": "27.1", "meddra_llt": "10002199", "outcome": "5",
          "death": True}]  # fmt: skip


def test_a_fatal_case_is_not_closed_with_its_death_investigation_report_still_owed(make_case, users):
    """NMPA: a death is reported at once AND the company sends its investigation report within 15 days. PV sends
    the 24-hour report and closes the case: no reason asked, the investigation clock stops, no reminder ever
    comes — the 15-day report is silently forgotten."""
    pv = users["pv"]
    case = make_case(reactions=FATAL, received_at=timezone.now() - dt.timedelta(hours=3))
    assert set(SafetyClock.objects.filter(case=case).values_list("kind", flat=True)) == {"report", "investigation"}
    services.record_submission(pv, case, {"channel": "nmpa"}, otp_code=sign_code(pv))
    case.refresh_from_db()
    with pytest.raises(ValidationError) as refused:
        services.set_status(pv, case, "closed")
    assert "reason" in refused.value.message_dict
    investigation = SafetyClock.objects.get(case=case, kind="investigation")
    assert investigation.stopped_at is None and investigation.next_check_at is not None


def test_a_submission_dated_before_the_company_heard_of_the_case_is_refused(make_case, users):
    """A typo in the year (2025 for 2026) records the report as sent before day 0: the clock is met "on time"
    and the case counts as reported on time in the reconciliation."""
    pv = users["pv"]
    case = make_case(received_at=timezone.now() - dt.timedelta(days=40))
    before = case.received_at - dt.timedelta(days=300)
    with pytest.raises(ValidationError) as refused:
        services.record_submission(pv, case, {"channel": "nmpa", "submitted_at": before}, otp_code=sign_code(pv))
    assert "submitted_at" in refused.value.message_dict
    assert SafetyClock.objects.get(case=case, kind="report").met_at is None


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("我父亲吃了你们的药，昨天人走了", "adverse_reaction"),  # a death, as families say it
        ("病人吃药后没抢救过来", "adverse_reaction"),
        ("吃了这个药尿血了", "adverse_reaction"),
        ("注射部位疼痛", "adverse_reaction"),
        ("把外用药当口服药喝了", "adverse_reaction"),  # medication errors
        ("外用的药膏被孩子吃了", "adverse_reaction"),
        ("给孩子吃了大人的量", "adverse_reaction"),
        ("药片里有一根头发", "quality"),  # foreign matter
        ("药盒里少了一板药", "quality"),  # a blister missing
        ("吃了你们的药，今天早上人就昏过去了", "adverse_reaction"),
        ("吃了你们的降压药，血压降到80了", "adverse_reaction"),
        ("吃了药手脚发凉", "adverse_reaction"),
        ("打了一针以后孩子高烧不退", "adverse_reaction"),  # a fever after the shot, not "no effect"
        ("药瓶里的液体变成了棕色", "quality"),
        ("这批药片比以前的小", "quality"),
        ("外包装没有防伪标签", "quality"),
        ("吃了一个月一点用都没有", "lack_of_efficacy"),
    ],
)
def test_the_net_catches_what_customers_really_say(text, kind):
    """Each of these went past the net: no flag, no triage, no clock — a death among them."""
    from pharmacrm.safety.screen import screen

    result = screen(text)
    assert result.signal and result.kind == kind, (text, result)


@pytest.mark.parametrize("text", ["快递员人走了", "他人已经走了，明天再联系", "儿童可以吃成人剂量吗？", "注射部位没有疼痛",
                                  "皮肤变成了黄色", "血压比以前的高", "请问没有批号的药能用吗？"])
def test_the_new_terms_raise_no_false_alarm(text):
    from pharmacrm.safety.screen import screen

    assert not screen(text).signal, text


def test_a_death_told_as_the_family_says_it_reaches_pv_within_hours(users):
    """"昨天人走了" is how a family reports a death; the hand-off must be the four-hour one with PV told at once."""
    from pharmacrm.notify.models import Notification
    from pharmacrm.safety.models import Flag
    from pharmacrm.servicedesk import services as desk

    ticket = desk.create_ticket(desk.SYSTEM, {
        "subject": "投诉", "description": "我父亲吃了你们的药，昨天人走了，你们要给个说法。", "channel": "web",
        "category": "other", "caller_name": "刘女士", "caller_phone": "13900139000",
    })  # fmt: skip
    flag = Flag.objects.get(ticket=ticket)
    handoff = SafetyClock.objects.get(flag=flag, kind="handoff")
    assert handoff.due_at - handoff.started_at == services.SERIOUS_HANDOFF
    assert Notification.objects.filter(recipient=users["pv"], kind="safety.serious").exists()
    assert services.sounds_serious(["結果人沒了"]) and services.sounds_serious(["人已經不在了"])  # Traditional too


@pytest.mark.parametrize("role", ["manager", "auditor"])
def test_the_overseeing_roles_see_the_case_on_the_ticket_it_came_from(role, users, xiehe, client_for):
    """Manager and auditor see every case's number and status (docs/safety.md, "Who may do what"), yet the ticket
    that raised a case showed them no safety panel at all: nothing said a reaction report was being handled."""
    from pharmacrm.servicedesk import services as desk

    ticket = desk.create_ticket(users["agent"], {
        "subject": "用药后皮疹", "description": "患者服用后出现全身皮疹。", "channel": "phone", "category": "other",
        "institution": xiehe, "assignee": users["agent"],
    })  # fmt: skip
    case = services.open_case_from(users["pv"], ticket, kind="adverse_reaction")
    page = client_for(role).get(f"/service/tickets/{ticket.pk}/", HTTP_ACCEPT_LANGUAGE="en")
    assert page.status_code == 200
    assert case.number in page.content.decode()


def test_a_reaction_written_on_an_old_ticket_is_in_this_periods_reconciliation(users, xiehe):
    """An order ticket from four months ago; today the pharmacist writes back that a patient got a rash. The net
    flags it (day 0 = today) — but the reconciliation of the last 90 days picks tickets by the ticket's own date,
    so the pending flag, and later its case, are in no period's report at all: nothing lists it for action."""
    from pharmacrm.safety import reconciliation as recon
    from pharmacrm.servicedesk import conversation
    from pharmacrm.servicedesk import services as desk

    old = timezone.now() - dt.timedelta(days=120)
    ticket = desk.create_ticket(users["agent"], {
        "subject": "到货延迟", "description": "上周订的货还没到。", "channel": "email", "category": "order_delivery",
        "institution": xiehe, "reply_email": "pharmacy@example.com", "assignee": users["agent"], "received_at": old,
    })  # fmt: skip
    conversation.receive_inbound(ticket, body="另外，有位患者服用后出现全身皮疹、瘙痒。", sender="pharmacy@example.com")
    report = recon.report(*recon.default_period())
    assert [p["problem"] for p in report["unmatched"] if p["source"] == ticket.number] == [recon.NO_DECISION]
    case = services.confirm_flag(users["pv"], ticket.safety_flags.get())
    rows = [r for r in recon.report(*recon.default_period())["rows"] if r["case_number"] == case.number]
    assert len(rows) == 1 and rows[0]["timeliness"] == recon.NOT_YET


def test_a_pregnancy_exposure_exported_as_e2b_says_the_patient_is_pregnant(make_case):
    """A pregnancy-exposure case, "妊娠 12 周" on its page and its PDF: the ICSR sent to a partner or the regulator
    said nothing of the pregnancy at all — the one fact that makes it this kind of case."""
    from lxml import etree

    from pharmacrm.safety.e2b import export

    case = make_case(kind="pregnancy", patient_pregnancy="妊娠 12 周，孕期第一次服药")
    xml = export.release([case], purpose="partner").xml  # validated against the schema on the way
    texts = etree.fromstring(xml).xpath(
        "//h:observation[h:code/@code='18']/h:value/text()", namespaces={"h": "urn:hl7-org:v3"}
    )
    assert any("妊娠 12 周，孕期第一次服药" in t and "高血压病史" in t for t in texts), texts


def test_a_quality_complaint_from_a_ticket_takes_over_the_product_and_batch_it_names(users, xiehe):
    """The agent logged the product and the batch on the ticket (药片上有黑点); PV opens a quality complaint from it:
    the complaint's product and batch are empty — QA starts without them, and closing is refused for "the batch"
    the ticket named all along."""
    from pharmacrm.servicedesk import services as desk
    from pharmacrm.servicedesk.models import Product

    product = Product.objects.create(brand_name="安心宁", generic_name="盐酸氨氯地平片", approval_number="国药准字H20253001",
                                     dosage_form="片剂", strength="5mg")  # fmt: skip
    ticket = desk.create_ticket(users["agent"], {
        "subject": "药片有黑点", "description": "新开的一盒药片上有黑点。", "channel": "phone", "category": "other",
        "institution": xiehe, "assignee": users["agent"], "product": product, "batch_number": "B2611X07",
    })  # fmt: skip
    case = services.open_case_from(users["pv"], ticket, kind="quality")
    complaint = case.quality
    assert (complaint.product, complaint.batch) == (product, "B2611X07")
    assert "batch" not in services.closing_problems(case)


def test_an_overdue_death_investigation_report_is_listed_for_action_in_the_reconciliation(users, xiehe):
    """A death reported by a hospital 20 days ago: the 24-hour report went out, the 15-day investigation report
    never did. The reconciliation — "anything unmatched is listed for action" — said nothing was unmatched."""
    from pharmacrm.safety import reconciliation as recon
    from pharmacrm.servicedesk import services as desk

    pv = users["pv"]
    day0 = timezone.now() - dt.timedelta(days=20)
    ticket = desk.create_ticket(users["agent"], {
        "subject": "患者死亡", "description": "患者服用后出现过敏性休克，抢救无效死亡。", "channel": "phone",
        "category": "other", "institution": xiehe, "assignee": users["agent"], "received_at": day0,
    })  # fmt: skip
    case = services.confirm_flag(pv, ticket.safety_flags.get(), data={
        **{k: v for k, v in COMPLETE.items() if k != "kind"},
        "reactions": FATAL,
    })  # fmt: skip
    services.record_submission(pv, case, {"channel": "nmpa", "submitted_at": day0 + dt.timedelta(hours=5)},
                               otp_code=sign_code(pv))  # fmt: skip
    problems = recon.report(*recon.default_period())["unmatched"]
    assert [p["problem"] for p in problems if p["case_number"] == case.number] == ["investigation_overdue"]


def test_the_report_form_names_the_company_as_the_reporting_unit(make_case, settings):
    """The 报告表 ticks 报告单位类别：生产企业 but leaves 单位名称 blank: every paper form needs the company's name
    written in by hand, though the ICSR of the same case carries it (C.3.2)."""
    from pharmacrm.safety import report_pdf
    from tests.safety.test_report_pdf import _read

    settings.SAFETY_SENDER_ORGANISATION = "华北示范制药股份有限公司"
    text = "".join(_read(report_pdf.render(make_case())))
    assert "单位名称：华北示范制药股份有限公司" in text


def test_a_refused_export_names_the_fields_as_the_case_form_does_in_the_users_language(make_case):
    """A Chinese PV officer's refused export read "Case Narrative Including Clinical Course, Therapeutic Measures,
    Outcome and Additional Relevant Information 为必填项" and "MedDRA Version for Reaction / Event：法规递交需要…":
    the FDA table's English element names inside Chinese sentences, not the labels of the form they must fill."""
    from django.utils import translation

    from pharmacrm.safety.e2b import rules

    case = make_case(narrative="", reactions=[{"verbatim": "皮疹", "outcome": "2"}])
    with translation.override("en"):
        problems = {p.element: p.message for p in rules.check(case, rules.REGULATORY)}
    assert problems["H.1"] == "Case narrative is required."
    assert problems["E.i.2.1a"].startswith("MedDRA version:")
    with translation.override("zh-hans"):
        messages = [p.message for p in rules.check(case, rules.REGULATORY)]
    assert not any("Clinical Course" in m or "Reaction / Event" in m for m in messages), messages


def test_the_serious_outcome_notice_keeps_the_customers_words_from_the_managers(users):
    """"患者张三丰服药后死亡": PV and their manager are told at once — but the manager's bell and e-mail carried the
    customer's words, patient name included, though patient identity is for PV only (and the other hand-off
    notices carry no excerpt for exactly that reason)."""
    from pharmacrm.notify.models import Delivery, Notification
    from pharmacrm.servicedesk import services as desk

    desk.create_ticket(desk.SYSTEM, {
        "subject": "投诉", "description": "我父亲张三丰服用你们的药后第二天死亡了。", "channel": "web",
        "category": "other", "caller_name": "张女士", "caller_phone": "13900139000",
    })  # fmt: skip
    to_manager = Notification.objects.get(recipient=users["manager"], kind="safety.serious")
    assert "张三丰" not in to_manager.body + to_manager.shown_body
    assert not any("张三丰" in str(d.payload) for d in Delivery.objects.filter(notification=to_manager))
    to_pv = Notification.objects.get(recipient=users["pv"], kind="safety.serious")
    assert "张三丰" in to_pv.body
