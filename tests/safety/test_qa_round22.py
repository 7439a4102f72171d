"""Safety defects found by the twenty-second review round (safety): follow-ups and case versions, the E2B
identifiers, quality complaints and CAPA, the reconciliation, exports."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from django.utils import timezone

from pharmacrm.safety import services
from pharmacrm.safety.models import SafetyClock
from tests.safety.conftest import sign_code

pytestmark = pytest.mark.django_db

FATAL = [{"verbatim": "过敏性休克后死亡", "meddra_version": "27.1", "meddra_llt": "10002199", "outcome": "5",
          "death": True}]  # fmt: skip


def test_a_follow_up_of_a_fatal_case_does_not_ask_for_a_second_death_investigation_report(make_case, users):
    """A death reported three days ago: the 24-hour report went out, the 15-day investigation report is under way.
    The hospital then sends the autopsy (a follow-up): the case page listed a second death investigation report due
    15 days after the autopsy, told PV of it as overdue in time, and would not close without a reason — but a death
    is investigated once (the follow-up is reported as such)."""
    pv = users["pv"]
    case = make_case(reactions=FATAL, received_at=timezone.now() - dt.timedelta(days=3))
    services.record_submission(pv, case, {"channel": "nmpa", "submitted_at": case.received_at + dt.timedelta(hours=5)},
                               otp_code=sign_code(pv))  # fmt: skip
    case.refresh_from_db()
    follow = services.add_follow_up(pv, case, {}, received_at=timezone.now() - dt.timedelta(hours=1),
                                    summary="尸检报告：过敏性休克", version=case.version)  # fmt: skip
    investigations = SafetyClock.objects.filter(case=case, kind="investigation")
    assert investigations.count() == 1
    assert investigations.get().case_version.sequence == 0
    # the follow-up itself is still reported
    assert SafetyClock.objects.filter(case_version=follow, kind="report", met_at__isnull=True).exists()


def test_the_e2b_case_ids_stay_as_the_first_export_sent_them(make_case, users, settings):
    """C.1.1 and C.1.8.1 were put together anew at each export from the country and the sender's code: the country
    corrected to HK (the reaction began on a trip) or the company's code set after go-live, and the follow-up went
    to the regulator under another id — a new case there, the first one never followed up."""
    from tests.safety.conftest import next_code
    from tests.safety.test_e2b_export import at, plain

    pv = users["pv"]
    case = make_case()
    first = services.export_icsr(pv, [case], otp_code=sign_code(pv))
    sent = f"CN-PHARMACRM-{case.number}"
    assert at(plain(first.xml), "C.1.1") == at(plain(first.xml), "C.1.8.1") == [sent]
    case.refresh_from_db()
    assert (case.sender_case_id, case.worldwide_id) == (sent, sent)
    services.update_case(pv, case, {"country": "HK"}, version=case.version)
    settings.SAFETY_SENDER_ORG_CODE = "HUAXIA"
    case.refresh_from_db()
    again = services.export_icsr(pv, [case], otp_code=next_code(pv))
    assert at(plain(again.xml), "C.1.1") == at(plain(again.xml), "C.1.8.1") == [sent]


def test_an_export_killed_midway_leaves_the_previous_batch_not_half_a_batch(make_case, tmp_path, monkeypatch):
    """`safety export-icsr --out` truncated the file and wrote into it: a run stopped midway (Ctrl-C, the worker
    restarted) left half an XML batch where the gateway's pick-up folder expects a whole one."""
    import io
    import os

    from django.core.management import call_command

    case = make_case()
    out = tmp_path / "batch.xml"
    out.write_bytes(b"<the batch sent yesterday/>")
    real_fdopen = os.fdopen

    class Killed(BaseException):
        pass

    class Dying:
        def __init__(self, fh):
            self.fh = fh

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.fh.close()
            return False

        def fileno(self):
            return self.fh.fileno()

        def flush(self):
            self.fh.flush()

        def write(self, data):
            self.fh.write(data[: len(data) // 2])
            self.fh.flush()
            raise Killed

    monkeypatch.setattr(os, "fdopen", lambda fd, mode="r", *a, **k: Dying(real_fdopen(fd, mode, *a, **k)))
    with pytest.raises(Killed):
        call_command("safety", "export-icsr", case.number, "--out", str(out), stdout=io.StringIO())
    monkeypatch.undo()
    assert out.read_bytes() == b"<the batch sent yesterday/>"
    assert [p.name for p in tmp_path.iterdir() if p.is_file()] == ["batch.xml"]


def test_a_case_with_a_long_narrative_from_an_icsr_can_be_corrected_on_its_page(client_for, make_case):
    """An ICSR from a partner (or the API) brought a narrative of 30,000 characters (E2B allows 100,000) and a medical
    history of 6,000: the case page's edit form allowed 20,000 and 4,000, so no correction of the case could be
    saved on the page at all — only 'at most 20000 characters' on a text the officer had not touched."""
    from django.urls import reverse

    from tests.safety.test_case_pages import form_data

    narrative = ("患者于2026年3月1日因社区获得性肺炎静脉滴注头孢曲松钠，用药后30分钟出现全身皮疹、瘙痒。" * 700)[:30000]
    history = ("高血压病史5年，规律服用氨氯地平；2型糖尿病病史3年。" * 300)[:6000]
    case = make_case(narrative=narrative, patient_history=history)
    response = client_for("pv").post(reverse("safety:case-edit", args=[case.pk]),
                                      form_data(case, reporter_name="陈医生"))  # fmt: skip
    assert response.status_code == 302
    case.refresh_from_db()
    assert case.reporter_name == "陈医生" and case.narrative == narrative and case.patient_history == history


def _quality_case(users):
    return services.create_case(users["pv"], {
        "kind": "quality", "received_at": timezone.now() - dt.timedelta(hours=2),
        "reporter_name": "李药师", "drugs": [{"role": "1", "brand_name": "阿莫灵", "batch": "B240301"}],
        "quality": {"batch": "B240301", "defect": "铝塑板漏装一粒"},
    })  # fmt: skip


def test_a_capa_action_sent_twice_is_added_once(client_for, users):
    """'Add' clicked twice (or Back and send) added the action twice, and its owner was told twice."""
    from django.urls import reverse

    from pharmacrm.notify.models import Notification
    from pharmacrm.safety.forms_cases import CapaForm
    from pharmacrm.safety.models import Capa

    case = _quality_case(users)
    token = CapaForm().fields["form_token"].initial
    data = {"action": "包装线增加称重剔除", "owner": users["pv"].pk, "due_date": (timezone.localdate()
            + dt.timedelta(days=30)).isoformat(), "form_token": token}  # fmt: skip
    pv = client_for("pv")
    url = reverse("safety:case-capa", args=[case.pk])
    assert pv.post(url, data).status_code == 302
    assert pv.post(url, data).status_code == 302
    assert Capa.objects.filter(complaint__case=case).count() == 1
    assert Notification.objects.filter(recipient=users["pv"], kind="safety.capa").count() == 1
    assert 'name="form_token"' in pv.get(reverse("safety:case", args=[case.pk])).content.decode()


def test_a_quality_complaint_handed_to_another_qa_owner_goes_to_them(users, make_user):
    """QA owner 1 went on leave and PV chose another: the investigation task stayed with the first (its due date on
    their list), and the new owner was never told the complaint was theirs."""
    from pharmacrm.core.roles import Role
    from pharmacrm.notify.models import Notification
    from pharmacrm.safety.models import CaseTask

    pv, qa1, qa2 = users["pv"], make_user("qa1", Role.PV), make_user("qa2", Role.PV)
    case = _quality_case(users)
    services.update_quality(pv, case, {"qa_owner": qa1})
    case.refresh_from_db()
    services.update_quality(pv, case, {"qa_owner": qa2}, version=case.version)
    task = CaseTask.objects.get(case=case, kind="qa_handoff")
    assert task.assignee == qa2 and task.done_at is None
    assert Notification.objects.filter(recipient=qa2, kind="safety.qa-handoff").count() == 1
    # saving the investigation again without changing the owner tells nobody again
    case.refresh_from_db()
    services.update_quality(pv, case, {"qa_owner": qa2, "root_cause": "设备故障"}, version=case.version)
    assert Notification.objects.filter(kind="safety.qa-handoff").count() == 2


def test_the_reconciliation_times_the_hand_off_from_when_the_company_heard_it(users, xiehe):
    """A call of two weeks ago was entered today and triaged at once: the report said '0.0 working h' beside
    'late' — the hours ran from when the flag was raised, while the hand-off clock (and its 'late') runs from the
    call."""
    from pharmacrm.safety import reconciliation as recon
    from pharmacrm.safety.models import Flag
    from pharmacrm.servicedesk import calendars
    from tests.safety.test_reconciliation import row_of, ticket

    called = ticket(users, xiehe, "患者服药后头晕、恶心，来电咨询", days_ago=14)
    flag = Flag.objects.get(ticket=called)
    services.dismiss_flag(users["pv"], flag, reason="已知不良反应的咨询，已另行上报")
    flag.refresh_from_db()
    row = row_of(recon.rows(timezone.localdate() - dt.timedelta(days=20), timezone.localdate()), called.number)
    hours = calendars.engine("business").between(called.received_at, flag.decided_at) / dt.timedelta(hours=1)
    assert row["handoff_on_time"] is False
    assert row["handoff_working_hours"] == round(hours, 1) > 8


def test_the_reconciliation_shows_the_hand_off_of_the_flag_heard_in_the_period(users, xiehe):
    """A ticket flagged two months ago was dismissed then; this week the daughter wrote that her father died (a
    new flag, four hours to reach PV). This week's report listed the ticket with the old flag's hand-off: triaged,
    'in time' — the death still waiting for PV looked handled."""
    from pharmacrm.safety import reconciliation as recon
    from pharmacrm.safety.models import Flag
    from pharmacrm.servicedesk import conversation
    from tests.safety.test_reconciliation import row_of, ticket

    old = ticket(users, xiehe, "吃了降压药以后有点头晕", days_ago=60, reply_email="liu@example.com")
    services.dismiss_flag(users["pv"], Flag.objects.get(ticket=old), reason="已知轻微头晕，已告知")
    conversation.receive_inbound(old, body="我父亲昨天晚上没抢救过来，人走了。", sender="liu@example.com")
    death = Flag.objects.get(ticket=old, status="pending")
    row = row_of(recon.rows(timezone.localdate() - dt.timedelta(days=6), timezone.localdate()), old.number)
    assert row["handoff_due"] == SafetyClock.objects.get(flag=death).due_at
    assert row["triaged_at"] is None and row["handoff_on_time"] is None


def test_every_flag_triaged_in_the_last_30_days_can_be_found_on_the_recent_tab(client_for):
    """'Flags triaged in the last 30 days' showed the latest 200 and nothing after them, without saying so: on a
    busy hotline the dismissals of three weeks ago, which an inspector asks about, were nowhere."""
    from django.urls import reverse

    from pharmacrm.safety.models import Flag

    now = timezone.now()
    Flag.objects.bulk_create([
        Flag(kind="adverse_reaction", terms=["头晕"], status="dismissed", received_at=now - dt.timedelta(days=25),
             decided_at=now - dt.timedelta(days=20, minutes=i), reason="非不良反应")
        for i in range(230)
    ])  # fmt: skip
    oldest = Flag.objects.order_by("decided_at").first()
    pv = client_for("pv")
    first = pv.get(reverse("safety:triage"), {"tab": "recent"}).content.decode()
    assert f'id="flag-{oldest.pk}"' not in first and "page=2" in first
    last = pv.get(reverse("safety:triage"), {"tab": "recent", "page": "5"}).content.decode()
    assert f'id="flag-{oldest.pk}"' in last


def test_the_triage_queue_says_in_which_order_it_lists_the_flags(client_for):
    """Since a death told an hour ago comes first, the queue's introduction still read 'oldest first'."""
    from django.urls import reverse
    from django.utils import translation

    with translation.override("en"):
        page = client_for("pv").get(reverse("safety:triage"), HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert "oldest first" not in page
    assert "the most urgent hand-off first" in page and "within four hours" in page


def test_a_reaction_with_a_fatal_outcome_makes_the_case_serious(make_case, client_for):
    """The outcome set to 'fatal' but 'results in death' left unticked: the death was a fatal case (24-hour clock)
    that the list's 'Serious: yes' did not show, whose 报告表 ticked 一般 (general) and whose ICSR said 'no
    information' for results in death."""
    from django.urls import reverse

    from tests.safety.test_e2b_export import at, plain

    case = make_case(reactions=[{"verbatim": "过敏性休克，抢救无效死亡", "meddra_version": "27.1",
                                 "meddra_llt": "10002199", "outcome": "5"}])  # fmt: skip
    assert case.fatal and case.serious
    assert case.reactions.get().death
    listed = client_for("pv").get(reverse("safety:cases"), {"serious": "yes"}).content.decode()
    assert case.number in listed
    from pharmacrm.safety.e2b import export

    assert at(plain(export.build([case])), "E.i.3.2a") == ["true"]


def test_a_rewritten_capa_effectiveness_check_is_in_the_audit_trail(users):
    """An effectiveness check rewritten after the fact (the words that justify 'effective') left an audit entry
    saying only 'status: effective → effective'; saving the action again unchanged moved the day it was checked."""
    from pharmacrm.core.models import AuditEntry

    pv = users["pv"]
    case = _quality_case(users)
    capa = services.add_capa(pv, case, {"action": "包装线增加称重剔除", "owner": pv,
                                        "due_date": timezone.localdate() + dt.timedelta(days=30)})  # fmt: skip
    services.update_capa(pv, capa, {"status": "effective", "effectiveness_check": "三个月内再无漏装投诉"})
    services.update_capa(pv, capa, {"status": "effective", "effectiveness_check": "抽查500盒无漏装"})
    entry = AuditEntry.objects.filter(object_type="safety.capa", object_id=str(capa.pk)).order_by("-seq").first()
    assert entry.changes == {"effectiveness_check": ["三个月内再无漏装投诉", "抽查500盒无漏装"]}
    capa.refresh_from_db()
    checked = capa.checked_at
    services.update_capa(pv, capa, {"status": "effective", "effectiveness_check": "抽查500盒无漏装"})
    capa.refresh_from_db()
    assert capa.checked_at == checked


def test_the_batch_trace_finds_a_batch_typed_in_full_width_on_the_ticket(users, xiehe):
    """The agent's input method was in full-width mode: the ticket (and the quality complaint opened from it) said
    ２１Ｅ００５. QA traced 21E005 to find who else received the batch, and that hospital was not on the list."""
    from pharmacrm.customers.models import Person
    from pharmacrm.servicedesk import services as desk

    ticket = desk.create_ticket(users["agent"], {
        "subject": "药片表面有黑点", "channel": "phone", "category": "drug_info", "institution": xiehe,
        "person": Person.objects.get(name="张伟"), "batch_number": "２１Ｅ００５",
    })  # fmt: skip
    assert [row["institution"] for row in services.batch_trace("21E005")] == [xiehe]
    assert [row["sources"] for row in services.batch_trace("21e005")] == [[ticket.number]]


def test_open_safety_case_clicked_twice_opens_one_case(client_for, users, xiehe):
    """'Open safety case' on the ticket clicked twice (the page was slow): the first click confirmed the flag and
    opened AE-…-1, the second found no flag pending and opened AE-…-2 — one report, two cases with their own clocks
    and reminders, one of them to nullify."""
    from django.urls import reverse

    from pharmacrm.safety.forms_cases import FromSourceForm
    from pharmacrm.safety.models import SafetyCase
    from pharmacrm.servicedesk import services as desk

    ticket = desk.create_ticket(users["agent"], {
        "subject": "用药后出现皮疹", "description": "患者静脉滴注后出现全身皮疹。", "channel": "phone",
        "category": "drug_info", "institution": xiehe,
    })  # fmt: skip
    token = FromSourceForm().fields["form_token"].initial
    pv = client_for("pv")
    url = reverse("safety:from-ticket", args=[ticket.pk])
    first = pv.post(url, {"kind": "adverse_reaction", "form_token": token})
    second = pv.post(url, {"kind": "adverse_reaction", "form_token": token})
    case = SafetyCase.objects.get(source_ticket=ticket)
    assert first["Location"] == second["Location"] == reverse("safety:case", args=[case.pk])
    page = pv.get(reverse("servicedesk:ticket", args=[ticket.pk])).content.decode()
    assert 'name="form_token"' in re.search(r'id="open-case-form".*?</form>', page, re.S).group(0)


def test_the_case_list_finds_a_number_typed_in_full_width(client_for, make_case):
    """The officer's input method was in full-width mode: ＡＥ－２０２６－… found no case."""
    from django.urls import reverse

    case, other = make_case(), make_case()
    wide = "".join(chr(ord(c) + 0xFEE0) for c in case.number)
    page = client_for("pv").get(reverse("safety:cases"), {"q": wide}).content.decode()
    assert f'data-number="{case.number}"' in page and f'data-number="{other.number}"' not in page


def test_a_ticket_flagged_again_shows_the_case_already_opened_from_it_in_triage(client_for, users, xiehe):
    """The daughter wrote again about her father's rash, now with a fever: the ticket was flagged again and the
    queue showed it like any new report, so confirming it opened a second case of the same patient; the case already
    opened from the ticket, to which the fever is a follow-up, was nowhere on the row."""
    from django.urls import reverse

    from pharmacrm.safety.models import Flag
    from pharmacrm.servicedesk import conversation
    from pharmacrm.servicedesk import services as desk

    ticket = desk.create_ticket(users["agent"], {
        "subject": "用药咨询", "description": "我父亲吃了你们的药以后全身起红疹子。", "channel": "email",
        "category": "other", "institution": xiehe, "reply_email": "liu@example.com", "assignee": users["agent"],
    })  # fmt: skip
    case = services.confirm_flag(users["pv"], Flag.objects.get(ticket=ticket))
    conversation.receive_inbound(ticket, body="今天他又开始发高烧，还呕吐。", sender="liu@example.com")
    again = Flag.objects.get(ticket=ticket, status="pending")
    page = client_for("pv").get(reverse("safety:triage")).content.decode()
    row = re.search(rf'id="flag-{again.pk}".*?</tr>', page, re.S).group(0)
    assert reverse("safety:case", args=[case.pk]) in row and case.number in row
