"""Session 20 review of every page in three languages, as every role: text the system writes once and shows later
is shown in the reader's language, not in the language of whoever happened to write it."""

from __future__ import annotations

import datetime as dt

from django.utils import timezone, translation

from pharmacrm.safety import services as safety

CASE = {
    "kind": "adverse_reaction",
    "patient_name": "王XX", "patient_sex": "2", "patient_age": "45", "patient_age_unit": "a",
    "narrative": "患者静脉滴注头孢曲松后 30 分钟出现全身皮疹。",
    "drugs": [{"role": "1", "brand_name": "罗氏芬", "generic_name": "注射用头孢曲松钠"}],
    "reactions": [{"verbatim": "全身皮疹伴瘙痒"}],
}  # fmt: skip


def test_a_safety_cases_follow_up_task_and_first_version_read_in_the_readers_language(client_for, users):
    """A case opened in Chinese (by the worker, the API or a colleague) without its reporter: an English-reading
    PV officer saw the task 请补充缺失信息：报告者的姓名… and the version 首次报告 on an English page."""
    with translation.override("zh-hans"):
        case = safety.create_case(users["pv"], {**CASE, "received_at": timezone.now() - dt.timedelta(days=1)})
    task = case.tasks.get()
    assert "报告者" in task.title  # stored as written

    page = client_for("pv").get(f"/safety/cases/{case.pk}/", HTTP_ACCEPT_LANGUAGE="en").content.decode()

    assert "Collect the missing information: the reporter&#x27;s name, contact, institution or qualification" in page
    assert "Initial report" in page
    assert "报告者" not in page and "首次报告" not in page and "请补充" not in page


def test_a_summary_written_by_a_person_is_shown_as_written(client_for, users):
    case = safety.create_case(users["pv"], {**CASE, "reporter_name": "张伟",
                                            "received_at": timezone.now() - dt.timedelta(days=1)}, summary="电话随访")
    page = client_for("pv").get(f"/safety/cases/{case.pk}/", HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert "电话随访" in page


def test_the_note_the_worker_writes_on_a_ticket_is_read_in_the_readers_language(client_for, users, xiehe):
    """The worker (in the default language) reopens a waiting ticket when the customer writes: an English-reading
    agent saw the note 客户再次来信。 in the ticket's English history."""
    from pharmacrm.servicedesk import conversation
    from pharmacrm.servicedesk import services as desk
    from pharmacrm.servicedesk.choices import Status

    ticket = desk.create_ticket(users["agent"], {"subject": "咨询用法", "channel": "phone", "category": "drug_info",
                                                 "institution": xiehe})  # fmt: skip
    desk.transition(users["agent"], ticket, Status.IN_PROGRESS)
    desk.transition(users["agent"], ticket, Status.WAITING)
    with translation.override("zh-hans"):
        conversation.receive_inbound(ticket, body="补充一下批号", sender="zhang.wei@example.cn")

    page = client_for("agent").get(f"/service/tickets/{ticket.pk}/", HTTP_ACCEPT_LANGUAGE="en").content.decode()

    history = page.split('id="history"')[1]
    assert "The customer wrote again." in history
    assert "客户再次来信" not in history


def _tables_outside_a_scroller(html: str) -> list[str]:
    from lxml import html as lxml_html

    doc = lxml_html.fromstring(html)
    return [
        t.get("id") or t.get("class") or "table"
        for t in doc.iter("table")
        if not any("table-wrap" in (a.get("class") or "").split() for a in t.iterancestors())
    ]


def test_every_table_of_the_pages_scrolls_sideways_on_a_phone_instead_of_widening_the_page():
    """At 390 px the key-account page's recent tickets (and 27 other tables: the safety case's clocks, versions and
    submissions, the ticket's clocks, the evaluation pages…) were wider than the screen and pushed the whole page
    sideways; every other table sits in a .table-wrap that scrolls on its own."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[2] / "pharmacrm" / "templates"
    bare = {}
    for path in root.rglob("*.html"):
        text = path.read_text(encoding="utf-8")
        if "<table" in text:
            found = _tables_outside_a_scroller(f"<div>{text}</div>")
            if found:
                bare[str(path.relative_to(root))] = found
    assert bare == {}


def test_the_ticket_page_clocks_table_scrolls_on_its_own(client_for, users, xiehe):
    from pharmacrm.servicedesk import services as desk

    ticket = desk.create_ticket(users["agent"], {"subject": "咨询用法", "channel": "phone", "category": "drug_info",
                                                 "institution": xiehe})  # fmt: skip
    page = client_for("agent").get(f"/service/tickets/{ticket.pk}/").content.decode()
    assert "<table" in page
    assert _tables_outside_a_scroller(page) == []


def test_the_note_of_a_reopening_after_a_poor_revisit_is_read_in_the_readers_language(client_for, users, xiehe):
    """The revisit reopens the ticket with a note in the site's language (score and 'solved' inside it): an English
    page showed 回访结果不佳，已重新打开… in the history. A note a person wrote stays as written."""
    from django.utils.translation import gettext

    from pharmacrm.servicedesk import services as desk
    from pharmacrm.servicedesk.choices import Status

    ticket = desk.create_ticket(users["agent"], {"subject": "咨询用法", "channel": "phone", "category": "drug_info",
                                                 "institution": xiehe})  # fmt: skip
    with translation.override("zh-hans"):
        chinese = gettext("Reopened after a poor revisit (score %(score)s, solved: %(solved)s).") % {
            "score": 1, "solved": gettext("no")}  # fmt: skip
    desk.transition(users["agent"], ticket, Status.IN_PROGRESS, note=chinese)
    desk.transition(users["agent"], ticket, Status.WAITING, note="已电话联系客户，等待回复")

    page = client_for("agent").get(f"/service/tickets/{ticket.pk}/", HTTP_ACCEPT_LANGUAGE="en").content.decode()

    history = page.split('id="history"')[1]
    assert "Reopened after a poor revisit (score 1, solved: no)." in history
    assert chinese not in history
    assert "已电话联系客户，等待回复" in history


def test_the_key_account_progress_report_is_named_in_the_readers_language(client_for):
    """Every other export is named in the page's language; this one was key-accounts-all-20261202.xlsx on a Chinese
    page."""
    from urllib.parse import quote

    from django.urls import reverse

    manager = client_for("manager")
    stamp = timezone.localtime().strftime("%Y%m%d")
    zh = manager.get(reverse("keyaccounts:report-xlsx"), HTTP_ACCEPT_LANGUAGE="zh-hans")["Content-Disposition"]
    assert "filename*=utf-8''" + quote(f"重点客户进展报告-{stamp}.xlsx") in zh
    en = manager.get(reverse("keyaccounts:report-pdf"), HTTP_ACCEPT_LANGUAGE="en")["Content-Disposition"]
    assert f'filename="Key-account-progress-report-{stamp}.pdf"' in en


def test_a_quality_hand_off_task_reads_in_the_readers_language(client_for, users):
    with translation.override("zh-hans"):
        case = safety.create_case(users["pv"], {"kind": "quality", "reporter_name": "药剂科",
                                                "drugs": CASE["drugs"], "quality": {"defect": "片剂变色"},
                                                "received_at": timezone.now() - dt.timedelta(days=1)})  # fmt: skip
        safety.update_quality(users["pv"], case, {"batch": "B20260901", "defect": "片剂变色",
                                                  "qa_owner": users["pv"]}, version=case.version)  # fmt: skip
    assert case.tasks.filter(kind="qa_handoff").get().title.isascii() is False

    page = client_for("pv").get(f"/safety/cases/{case.pk}/", HTTP_ACCEPT_LANGUAGE="en").content.decode()

    assert f"Investigate the quality complaint {case.number}" in page
