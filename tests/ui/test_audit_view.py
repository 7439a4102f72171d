"""The audit viewer: filters, paging, changes before → after, and verifying the chain from the page."""

from __future__ import annotations

import datetime

from django.utils import timezone

from pharmacrm.core.models import AuditEntry
from pharmacrm.customers import services


def test_the_audit_trail_shows_who_did_what_with_before_and_after(client_for, xiehe, admin_user):
    services.update_institution(admin_user, xiehe, {"address": "东城区帅府园1号"})
    page = client_for("auditor").get("/accounts/audit/").content.decode()
    assert "北京协和医院" in page and "东城区帅府园1号" in page
    assert f'href="/customers/institutions/{xiehe.pk}/"' in page
    entry = AuditEntry.objects.filter(action="update").first()
    assert entry.request_id[:9] in page


def test_filters_narrow_the_trail(client_for, xiehe, doctor, admin_user):
    client = client_for("auditor")
    client_for("agent").post(f"/customers/people/{doctor.pk}/reveal/", {"reason": "Call back"})
    by_actor = client.get("/accounts/audit/?actor=agent").content.decode()
    assert "Call back" in by_actor and "北京协和医院" not in by_actor
    by_action = client.get("/accounts/audit/?action=read_personal").content.decode()
    assert "Call back" in by_action
    by_object = client.get(
        f"/accounts/audit/?object_type=customers.institution&object_id={xiehe.pk}"
    ).content.decode()
    assert "北京协和医院" in by_object and "张伟" not in by_object
    request_id = AuditEntry.objects.get(action="read_personal").request_id
    by_request = client.get(f"/accounts/audit/?request_id={request_id}").content.decode()
    assert "Call back" in by_request and "北京协和医院" not in by_request
    tomorrow = (timezone.localdate() + datetime.timedelta(days=1)).isoformat()
    future = client.get(f"/accounts/audit/?date_from={tomorrow}").content.decode()
    assert "No audit entries match these filters." in future
    today = timezone.localdate().isoformat()
    assert (
        "北京协和医院" in client.get(f"/accounts/audit/?date_from={today}&date_to={today}").content.decode()
    )


def test_the_trail_is_paged_by_fifty_newest_first(client_for, admin_user, beijing):
    for i in range(55):
        services.create_institution(admin_user, {"name": f"诊所{i:02d}", "kind": "clinic", "region": beijing})
    client = client_for("auditor")
    first = client.get("/accounts/audit/?action=create").content.decode()
    assert "诊所54" in first and "诊所00" not in first
    assert "before=" in first
    older_seq = first.split("before=")[1].split('"')[0]
    second = client.get(f"/accounts/audit/?action=create&before={older_seq}").content.decode()
    assert "诊所00" in second and "诊所54" not in second


def test_verifying_the_chain_from_the_page(client_for, xiehe):
    response = client_for("auditor").post("/accounts/audit/", {"verify": "1"}, HTTP_ACCEPT_LANGUAGE="en")
    page = response.content.decode()
    assert "The audit chain is intact:" in page
    assert str(AuditEntry.objects.count()) in page


def test_the_audit_trail_is_refused_to_other_roles(client_for):
    for role in ("agent", "manager", "pv"):
        assert client_for(role).get("/accounts/audit/").status_code == 403
        assert client_for(role).post("/accounts/audit/", {"verify": "1"}).status_code == 403


def test_details_read_as_words_not_codes_in_the_readers_language(client_for, users, xiehe):
    """QA read raw keys and codes on the auditor's page: a review's department and opinion, a quality
    complaint's changes with a user id, export filters with a customer id, system actors, a case page's
    purpose, a safety flag named by its codes."""
    import re

    from pharmacrm.core import audit
    from pharmacrm.safety.models import Flag

    A = AuditEntry.Action
    audit.record(A.CREATE, ("keyaccounts.proposal", "1", "提名"), user=users["kam"],
                 changes={"review": [None, {"department": "qa", "opinion": "neutral"}]})  # fmt: skip
    audit.record(A.UPDATE, ("safety.safetycase", "1", "QC-1"), user=users["pv"],
                 quality={"qa_owner": [None, users["expert"].pk], "recall_decision": ["", "none"]})  # fmt: skip
    audit.record(A.EXPORT, ("sales.orderline", "", "3"), user=users["manager"], filters={"customer": xiehe.pk})
    audit.record(A.READ_PERSONAL, ("safety.safetycase", "1", "QC-1"), user=users["pv"], purpose="case page")
    audit.record(A.EXPORT, ("safety.safetycase", "1", "QC-1"), user=users["pv"], format="报告表 PDF")
    flag = Flag.objects.create(kind="adverse_reaction", received_at=timezone.now())
    audit.record(A.CREATE, flag, actor_name="net")
    client = client_for("auditor")
    client.post("/i18n/setlang/", {"language": "zh-hans"})
    page = client.get("/accounts/audit/").content.decode()
    text = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", page.split("<tbody", 1)[1].split("</tbody>", 1)[0]))
    for raw in ("department", "opinion", "neutral", "qa_owner", "recall_decision", "customer", "case page", " net ",
                "adverse_reaction", "Safety screening"):
        assert raw not in text, raw
    # PostgreSQL's jsonb keeps a detail's keys in its own order
    # labelled values with Chinese punctuation, as the rest of the page (it read "科室: 质量部; 评审意见: 无异议")
    assert "评审意见 — → 科室：质量部；评审意见：无异议" in text or "评审意见 — → 评审意见：无异议；科室：质量部" in text
    assert f"→ {users['expert'].display_name or users['expert'].username}" in text
    assert "客户：北京协和医院" in text and "病例页面" in text
    assert "格式 药品不良反应/事件报告表（PDF）" in text
    client.post("/i18n/setlang/", {"language": "zh-hant"})
    assert "藥品不良反應/事件報告表（PDF）" in client.get("/accounts/audit/").content.decode()
    assert "客戶：北京协和医院" in client.get("/accounts/audit/").content.decode()
    client.post("/i18n/setlang/", {"language": "en"})
    assert "Customer: 北京协和医院" in client.get("/accounts/audit/").content.decode()
    assert f"安全信号筛查 新建 安全标记 药品不良反应 #{flag.pk}" in text
