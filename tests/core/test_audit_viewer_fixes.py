"""The audit viewer (/accounts/audit/): it renders every kind of entry, in the reader's language and time zone,
names records and users, and finds users by username or display name in either case."""

from __future__ import annotations

import datetime
import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone, translation

from pharmacrm.core import audit
from pharmacrm.core.models import AuditEntry
from pharmacrm.core.templatetags.crm import audit_detail, audit_display, audit_label, audit_value

A = AuditEntry.Action
URL = "/accounts/audit/"


@pytest.fixture
def zhang(xiehe):
    """张伟, the doctor at 北京协和医院."""
    return xiehe.people.get(name="张伟")


def page(client, **params) -> str:
    response = client.get(URL, params, HTTP_ACCEPT_LANGUAGE="en")
    assert response.status_code == 200, response.content[:500]
    return response.content.decode()


def text(html: str) -> str:
    """The page's text, tags removed and spaces collapsed."""
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


# --- entries of any shape render (QA: 500 on ?action=create, ?object_id=1, paging back) -----------------


@pytest.fixture
def odd_entries(users, xiehe):
    """Entries whose keys are no plain column: a reverse relation (a meeting's `actions`), a field that no
    longer exists, lists and dicts where a choice is expected, nested details, a deleted record."""
    admin = users["admin"]
    audit.record(A.CREATE, ("keyaccounts.meeting", "1", "第三季度沟通会"), user=admin,
                 changes={"title": [None, "第三季度沟通会"], "actions": [None, 3]})  # fmt: skip
    audit.record(A.UPDATE, ("keyaccounts.meeting", "1", "第三季度沟通会"), user=admin,
                 changes={"actions": [[1, 2], {"done": True}]}, action_id=1)  # fmt: skip
    audit.record(A.UPDATE, xiehe, user=admin, changes={
        "tier": [["a", "b"], {"x": 1}], "no_such_field": [None, [1, {"k": "v"}]], "region": [None, "110105"],
        "tags": [["内科"], ["内科", "外科"]],
    })  # fmt: skip
    audit.record(A.DELETE, ("customers.institution", "999999", "已删除的医院"), user=admin,
                 changes={"parent": [999998, None]})  # fmt: skip
    audit.record(A.UPDATE, ("servicedesk.slaclock", "", "2"), user=admin,
                 breaches=[{"ticket": "TK-2026-000001", "clock": "first_response", "due_at": "2026-11-18T03:32:00+00:00"}],
                 moved={"customers.person.institution": 12})  # fmt: skip
    audit.record(A.UPDATE, ("no_such_app.gone", "7", "gone"), user=admin, changes={"x": [1, 2]}, odd=[1, [2]])


@pytest.mark.parametrize(
    "params",
    [{}, {"action": "create"}, {"object_id": "1"}, {"actor": "kam", "action": "create"}, {"action": "update"}],
    ids=["all", "action", "object_id", "actor+action", "updates"],
)
def test_the_viewer_renders_entries_of_every_shape(params, client_for, odd_entries):
    html = page(client_for("auditor"), **params)
    assert "Audit trail" in html


def test_paging_back_renders_older_entries(client_for, odd_entries):
    newest = AuditEntry.objects.order_by("-seq").first().seq
    client = client_for("auditor")
    for before in range(newest + 1, 0, -2):
        page(client, before=before)


def test_the_display_helpers_cope_with_any_key():
    assert audit_display("keyaccounts.meeting", "actions", 3) == "3"
    assert audit_display("keyaccounts.meeting", "actions", None) == "—"
    assert audit_display("customers.institution", "tier", ["a", "b"]) == "a, b"
    assert audit_display("customers.institution", "gone_field", {"k": [1, 2]}) == "k：1, 2"
    assert audit_display("no_such.model", "x", [1]) == "1"
    with translation.override("en"):
        assert audit_label("keyaccounts.meeting", "actions") == "Meeting action items"
        assert audit_label("customers.institution", "gone_field") == "gone_field"
        assert audit_detail("customers.person", "fields", ["mobile", "gone"]) == "Mobile phone, gone"
        assert audit_value(list(range(30))).endswith("(30 in all)")
    assert audit_value(list(range(30))).endswith("（共 30 项）")  # zh-Hans by default


def test_a_foreign_keys_id_is_labelled_in_the_readers_language():
    """A signed decision's entry records `signature_id`: the proposal's `signature` foreign key, declared
    without a label, found by its column name. Its English name "signature" was taken for a label, and the
    auditor's Chinese page read "Signature 9" among the 签名 and 摘要 beside it."""
    assert audit_label("keyaccounts.proposal", "signature_id") == "签名"
    assert audit_label("keyaccounts.proposal", "signature") == "签名"
    with translation.override("en"):
        assert audit_label("keyaccounts.proposal", "signature_id") == "Signature"


def test_why_a_key_account_decision_changed_the_tier_is_in_the_readers_language():
    """Listing or de-listing a key account changes the institution's tier with the reason as a code of the
    program; the auditor's Chinese page showed "原因 key-account listing"."""
    assert audit_detail("customers.institution", "reason", "key-account listing") == "列入重点客户"
    assert audit_detail("customers.institution", "reason", "key-account de-listing") == "移出重点客户"
    assert audit_detail("customers.institution", "reason", "回访") == "回访"  # a reason someone typed stays


def test_why_a_signature_was_refused_is_in_the_readers_language():
    """A wrong one-time code given to sign (a safety submission, a key-account decision) is recorded as a
    failed sign-in with the reason as a code of the program; the Chinese page showed "原因 wrong one-time
    code"."""
    assert audit_detail("safety.safetycase", "reason", "wrong one-time code") == "一次性验证码错误"
    with translation.override("en"):
        assert audit_detail("safety.safetycase", "reason", "wrong one-time code") == "wrong one-time code"


# --- in the reader's language and time zone, with records and users named ---------------------------------


def test_details_and_change_keys_are_labelled_and_codes_translated(users, client_for, zhang):
    from pharmacrm.core.personal import contact_view

    auditor = users["auditor"]
    contact_view(auditor, [zhang], reveal_reason="回访", purpose="person page")
    audit.record(A.LOGIN, auditor, user=auditor, via="web")
    audit.record(A.EXPORT, ("keyaccounts", "", "progress report"), user=users["admin"], format="xlsx", accounts=2)
    audit.record(A.UPDATE, users["kam"], user=users["admin"], changes={"roles": [["rep"], ["kam"]]})
    body = text(page(client_for("auditor")))
    assert "Fields Mobile phone, Landline, E-mail, Birthday, Home address, ID card number" in body
    assert "Purpose person page" in body and "Reason 回访" in body
    assert "Signed in via web page" in body
    assert "Format XLSX" in body and "progress report" in body
    assert "Roles Sales representative → Key-account manager" in body
    for raw in ("purpose:", "fields:", "via:", "actor_name", "people:", "customers.person:", "core.user:"):
        assert raw not in body


def test_times_inside_entries_are_shown_in_the_readers_time_zone(users, client_for, zhang, settings):
    settings.TIME_ZONE = "Asia/Shanghai"
    from pharmacrm.customers import services

    at = datetime.datetime(2026, 12, 1, 3, 0, 2, tzinfo=datetime.UTC)
    services.record_consent(users["admin"], zhang, {"purpose": "marketing", "channel": "sms", "status": "given",
                                                    "at": at})  # fmt: skip
    body = text(page(client_for("auditor"), object_type="customers.consent"))
    assert "2026-12-01 11:00:02" in body  # 03:00:02 UTC
    assert "T03:00:02" not in body and "+00:00" not in body


def test_objects_are_named_and_linked_when_the_reader_may_open_them(users, client_for, xiehe, zhang):
    services_person_url = reverse("customers:person", args=[zhang.pk])
    html = page(client_for("auditor"), object_type="customers.person")
    body = text(html)
    assert f'href="{services_person_url}"' in html
    assert "person 张伟" in body  # the model's name and the record's current name
    assert f"customers.person:{zhang.pk}" not in body
    # the user administration page only for who may manage users
    kam = users["kam"]
    audit.record(A.UPDATE, kam, user=users["admin"], changes={"display_name": ["kam", "王晓燕"]})
    user_page = reverse("users-edit", args=[kam.pk])
    assert user_page in page(client_for("admin"), object_type="core.user")
    assert user_page not in page(client_for("auditor"), object_type="core.user")


def test_a_deleted_record_shows_what_the_entry_recorded(users, client_for, xiehe):
    audit.record(A.DELETE, ("customers.institution", "999999", "已删除的医院"), user=users["admin"])
    html = page(client_for("auditor"), object_id="999999")
    assert "已删除的医院" in html and "/customers/institutions/999999/" not in html


def test_a_page_costs_a_few_queries_per_model_not_per_row(users, client_for, make_user):
    admin = users["admin"]
    from pharmacrm.customers import services

    people = []
    for n in range(40):
        inst = services.create_institution(admin, {"name": f"测试医院{n}", "kind": "clinic"})
        people.append(services.create_person(admin, {"name": f"测试{n}", "institution": inst}))
    client = client_for("auditor")

    def queries(limit_seq: int) -> int:
        with CaptureQueriesContext(connection) as captured:
            client.get(URL, {"before": limit_seq}, HTTP_ACCEPT_LANGUAGE="en")
        return len(captured.captured_queries)

    newest = AuditEntry.objects.order_by("-seq").first().seq
    few = queries(AuditEntry.objects.order_by("seq").values_list("seq", flat=True)[5])  # 5 entries
    many = queries(newest + 1)  # a full page of 50
    assert many - few <= 4, (few, many)


# --- the user filter --------------------------------------------------------------------------------------------


def test_the_user_filter_matches_username_or_display_name_in_either_case(users, client_for, make_user):
    wang = make_user("wangxy")
    wang.display_name = "王晓燕"
    wang.save()
    audit.record(A.LOGIN, wang, user=wang, via="web")
    audit.record(A.LOGIN, users["kam"], user=users["kam"], via="api")
    client = client_for("auditor")
    for term in ("王晓燕", "WangXY", "wangxy"):
        body = text(page(client, actor=term))
        assert "王晓燕" in body and "No audit entries match" not in body, term
    body = text(page(client, actor="KAM"))
    assert "Signed in via API" in body


def test_an_object_id_in_full_width_digits_finds_the_records_own_entries(users, client_for, zhang):
    """A Chinese input method in full-width mode types the id as １２: the filter found the list pages that had
    shown the person, but none of the person's own entries (created, changed) — the page said they had none."""
    client = client_for("auditor")
    wide = str(zhang.pk).translate({ord(d): ord(d) + 0xFEE0 for d in "0123456789"})

    def seqs(object_id: str) -> list[str]:
        return re.findall(r'<td class="num">(\d+)</td>', page(client, object_type="customers.person", object_id=object_id))

    assert seqs(wide) == seqs(str(zhang.pk)) != []


def test_entries_at_are_still_shown_in_local_time_on_the_row(users, client_for):
    audit.record(A.LOGIN, users["kam"], user=users["kam"], via="web")
    entry = AuditEntry.objects.order_by("-seq").first()
    local = timezone.localtime(entry.at).strftime("%Y-%m-%d %H:%M:%S")
    assert local in page(client_for("auditor"))


# --- the date filters ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("dates", [
    {"date_to": "9999-12-31"}, {"date_from": "0001-01-01"}, {"date_from": "0001-01-01", "date_to": "9999-12-31"},
])  # fmt: skip
def test_the_first_and_the_last_day_of_the_calendar_mean_no_bound(users, client_for, dates):
    """A "from" of 0001-01-01 or a "to" of 9999-12-31 (everything since, or until forever) ended in a server
    error: the first day of the calendar starts in year 0 in UTC, and the last has no day after it. They mean no
    bound on that side."""
    audit.record(A.LOGIN, users["kam"], user=users["kam"], via="web")
    body = text(page(client_for("auditor"), actor="kam", **dates))
    assert "Signed in" in body and "No audit entries match" not in body


# --- every detail the services write is labelled (crawl of session 41: "sheets 1" on the Chinese page) ------


def test_a_split_export_and_an_import_error_report_are_read_in_the_readers_language(users, client_for):
    """A customer export in several sheets records `sheets`, an import's error report what its count counts:
    the auditor's Chinese page showed "sheets 2", "counted error lines" and "rows_with_errors 3"."""
    admin = users["admin"]
    audit.record(A.EXPORT, ("customers.person", "", "联系人"), user=admin, format="xlsx", count=1_048_576, sheets=2)
    response = client_for("auditor").get(URL, HTTP_ACCEPT_LANGUAGE="zh-hans")
    body = text(response.content.decode())
    assert "工作表数 2" in body and "sheets" not in body
    english = text(page(client_for("auditor")))
    assert "Sheets 2" in english
    job = "customers.importjob"  # an import's error report: what its count counts
    with translation.override("zh-hans"):
        assert audit_label(job, "counted") == "计数对象" and audit_detail(job, "counted", "error lines") == "错误行"
        assert audit_label(job, "rows_with_errors") == "有错误的行"
        assert audit_detail(job, "report", "import errors") == "导入错误"


def _audit_detail_keys() -> dict[str, str]:
    """The keyword details the code passes to audit.record / record_many (and the apps' audit helpers): key → where."""
    import ast
    from pathlib import Path

    import pharmacrm

    signature = {"changes", "user", "during", "actor_name"}
    found: dict[str, str] = {}
    root = Path(pharmacrm.__file__).parent
    for path in root.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.Call):
                continue
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            owner = getattr(func.value, "id", "") if isinstance(func, ast.Attribute) else ""
            if (owner == "audit" and name in ("record", "record_many")) or name in ("_record", "_audit", "_audit_import"):
                for kw in node.keywords:
                    if kw.arg and kw.arg not in signature:
                        found.setdefault(kw.arg, f"{path.relative_to(root)}:{node.lineno}")
    return found


def test_every_detail_the_services_record_has_a_label():
    """A detail key the audit page cannot label shows as the bare code on every language's page. A key that is a
    field of some model is labelled by that field when the entry is of its model."""
    from django.apps import apps

    from pharmacrm.core.templatetags.crm import AUDIT_KEYS

    fields = {n for model in apps.get_models() for f in model._meta.get_fields() for n in (f.name, getattr(f, "attname", ""))}
    keys = _audit_detail_keys()
    assert {"sheets", "format", "reason"} <= keys.keys()  # the scan finds what the code writes
    unlabelled = {k: where for k, where in keys.items() if k not in AUDIT_KEYS and k not in fields}
    assert unlabelled == {}


def test_codes_written_as_detail_values_are_translated():
    """Reasons and outcomes the service desk and the E2B import write as codes, in the reader's language."""
    assert audit_detail("servicedesk.ticket", "reason", "breach withdrawn") == "超时判定已撤回（重新计算时限）"
    assert audit_detail("servicedesk.ticket", "reason", "reply not delivered") == "回复未送达"
    assert audit_detail("safety.safetycase", "outcome", "no such case") == "无此全球病例编号的病例"


def test_how_a_change_came_in_is_in_the_readers_language():
    """Opportunities, sales targets and service goals record whether a change came from a page, a file or the
    API; the auditor's Chinese page showed "来源 form"."""
    assert audit_detail("sales.opportunity", "source", "form") == "网页"
    assert audit_detail("sales.salestarget", "source", "import") == "文件导入"
    assert audit_detail("servicedesk.servicegoal", "source", "api") == "接口"
    with translation.override("zh-hant"):
        assert audit_detail("sales.opportunity", "source", "form") == "網頁"
    with translation.override("en"):
        assert audit_detail("sales.salestarget", "source", "import") == "file import"
