"""Words and identifiers on pages (QA, fix brief H4): one English word with several meanings gets one
translation per meaning (a context each), the language menu names each language in its own name, the audit
viewer shows no internal keys, codes or ids, a hand-off names its interaction in the reader's language, a
dose unit is shown by its label, and download names follow the page's language.

Translations of new contexts are added to the compiled catalogue by the lead after this change: tests that
need a Chinese word of a new context put it into the running catalogue themselves (`zh_words`), so they
check which msgid and context a page uses, whatever the .mo file holds yet."""

from __future__ import annotations

import datetime as dt
import re
from urllib.parse import quote

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone, translation

from pharmacrm.core import audit
from pharmacrm.core.models import AuditEntry
from pharmacrm.core.templatetags.crm import audit_endpoint
from tests.api.conftest import api_for  # noqa: F401  (token clients per role)

A = AuditEntry.Action
AUDIT_URL = "/accounts/audit/"
_MISSING = object()


def text(html: str) -> str:
    """A page's text, tags removed and spaces collapsed."""
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


@pytest.fixture
def zh_words():
    """zh_words({("context", "msgid"): "词", …}) puts these translations into the running zh-Hans catalogue
    for the test (("", msgid) for a msgid without context) and takes them out again afterwards."""
    from django.utils.translation import trans_real

    catalogue = trans_real.translation("zh-hans")._catalog._catalogs[0]
    saved: dict[str, object] = {}

    def add(words: dict[tuple[str, str], str]) -> None:
        for (context, msgid), word in words.items():
            key = f"{context}\x04{msgid}" if context else msgid
            saved.setdefault(key, catalogue.get(key, _MISSING))
            catalogue[key] = word

    yield add
    for key, word in saved.items():
        if word is _MISSING:
            catalogue.pop(key, None)
        else:
            catalogue[key] = word


# The translations the lead adds (the plain msgids keep their customer meaning: 新客户, 合作中, 决策阶段)
CONTEXT_WORDS = {
    ("customer tier", "New"): "新客户",
    ("customer stage", "Active"): "合作中",
    ("customer stage", "Decision"): "决策阶段",
    ("notification", "New"): "新",
    ("case status", "New"): "新建",
    ("enabled checkbox", "Active"): "启用",
    ("enabled status", "Active"): "已启用",
    ("user account", "Active"): "已启用",
    ("triage", "Decision"): "处理决定",
    ("key account status", "Active"): "合作中",
}


# --- 1 and 2: one word, one meaning per context ---------------------------------------------------------


def test_choices_give_the_customer_words_and_the_others_their_own(zh_words):
    from pharmacrm.customers.choices import Stage, Tier
    from pharmacrm.keyaccounts.choices import AccountStatus
    from pharmacrm.safety.choices import CaseStatus

    zh_words(CONTEXT_WORDS)
    with translation.override("zh-hans"):
        assert str(Tier.NEW.label) == "新客户"
        assert str(Stage.ACTIVE.label) == "合作中" and str(Stage.DECISION.label) == "决策阶段"
        assert str(CaseStatus.NEW.label) == "新建"  # was 新客户
        assert str(AccountStatus.ACTIVE.label) == "合作中"
    with translation.override("en"):
        assert (str(Tier.NEW.label), str(CaseStatus.NEW.label), str(Stage.ACTIVE.label)) == ("New", "New", "Active")


def test_active_checkboxes_of_settings_forms_read_switched_on_not_cooperating(zh_words):
    from pharmacrm.notify.forms import EndpointForm
    from pharmacrm.safety.forms_triage import RuleForm
    from pharmacrm.servicedesk import forms_conversation, forms_routing, forms_settings

    zh_words(CONTEXT_WORDS)
    forms = [EndpointForm, RuleForm, forms_conversation.ProductForm, forms_conversation.TemplateForm]
    forms += [f for module in (forms_routing, forms_settings) for f in vars(module).values()
              if isinstance(f, type) and "active" in getattr(f, "base_fields", {})]  # fmt: skip
    assert len(forms) >= 8  # SLA policy, category, escalation rule, assignment rule … too
    for form in forms:
        with translation.override("zh-hans"):
            assert str(form.base_fields["active"].label) == "启用", form
        with translation.override("en"):
            assert str(form.base_fields["active"].label) == "Active", form


def test_an_unread_notification_is_badged_new_not_new_customer(users, client_for, zh_words):
    from pharmacrm.notify import services as notify

    zh_words(CONTEXT_WORDS)
    notify.send([users["kam"]], kind="test.note", title="Q3 会议纪要已上传", email=False)
    client = client_for("kam")
    html = client.get(reverse("notify:inbox"), HTTP_ACCEPT_LANGUAGE="zh-hans").content.decode()
    badge = re.search(r'<span class="badge badge-update">([^<]*)</span>', html)
    assert badge is not None and badge[1] == "新"
    assert "新客户" not in html
    html = client.get(reverse("notify:inbox"), HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert '<span class="badge badge-update">New</span>' in html


def test_the_users_list_says_an_account_is_switched_on_not_cooperating(client_for, zh_words):
    zh_words(CONTEXT_WORDS)
    html = client_for("admin").get(reverse("users"), HTTP_ACCEPT_LANGUAGE="zh-hans").content.decode()
    assert '<span class="badge badge-create">已启用</span>' in html
    assert '<span class="badge badge-create">合作中</span>' not in html


def test_settings_lists_and_the_triage_queue_use_their_own_words(client_for, zh_words):
    zh_words(CONTEXT_WORDS)
    client = client_for("admin")
    for name in ("servicedesk:settings-policies", "servicedesk:settings-categories"):
        html = client.get(reverse(name), HTTP_ACCEPT_LANGUAGE="zh-hans").content.decode()
        assert "已启用" in html and "合作中" not in html, name
    html = client_for("pv").get(reverse("safety:triage"), HTTP_ACCEPT_LANGUAGE="zh-hans").content.decode()
    assert '<th scope="col">处理决定</th>' in html and "决策阶段" not in html


def test_no_template_or_python_file_uses_the_ambiguous_words_without_a_context():
    """Every "New", "Active" and "Decision" names its meaning (pgettext / translate … context)."""
    from pathlib import Path

    import pharmacrm

    root = Path(pharmacrm.__file__).parent
    bare = re.compile(r"""(?:\b_|gettext|gettext_lazy)\(\s*["'](New|Active|Decision)["']\s*\)"""
                      r"""|\{%\s*translate\s+["'](New|Active|Decision)["']\s*%\}""")  # fmt: skip
    found = []
    for path in [*root.rglob("*.py"), *root.rglob("*.html")]:
        if "migrations" in path.parts:
            continue
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if bare.search(line):
                found.append(f"{path.relative_to(root)}:{n}: {line.strip()}")
    assert not found, "\n".join(found)


# --- 3: the language menu -------------------------------------------------------------------------------


@pytest.mark.parametrize("lang", ["zh-hans", "en", "zh-hant"])
def test_the_language_menu_names_each_language_in_its_own_name(lang, client, client_for):
    pages = [
        (client, reverse("login")),
        (client, reverse("public:form")),
        (client_for("rep"), reverse("customers:institutions")),
    ]
    for c, url in pages:
        html = c.get(url, HTTP_ACCEPT_LANGUAGE=lang).content.decode()
        menu = re.search(r'<select id="language-select".*?</select>', html, re.S)
        assert menu is not None, url
        names = re.findall(r"<option [^>]*>([^<]*)</option>", menu[0])
        assert names == ["简体中文", "English", "繁體中文"], (url, lang, names)


# --- 4: the audit viewer shows no internal identifiers --------------------------------------------------


def audit_page(client, lang: str = "en", **params) -> str:
    response = client.get(AUDIT_URL, params, HTTP_ACCEPT_LANGUAGE=lang)
    assert response.status_code == 200, response.content[:500]
    return text(response.content.decode())


def test_a_backup_entry_shows_labels_not_its_keys(client_for):
    audit.record(A.BACKUP, ("core.backup", "", "pharmacrm-20261201.dump"), actor_name="cli",
                 file="pharmacrm-20261201.dump", bytes=123456, sha256="ab" * 32, vendor="postgresql",
                 files="pharmacrm-20261201.files.tar", files_count=3, files_sha256="cd" * 32)  # fmt: skip
    audit.record(A.RESTORE, ("core.backup", "", "pharmacrm-20261201.dump"), actor_name="cli",
                 file="pharmacrm-20261201.dump", vendor="sqlite", key_problems=[], keyring_restored=True,
                 files=None, files_count=None)  # fmt: skip
    html = client_for("auditor").get(AUDIT_URL, {"object_type": "core.backup"}, HTTP_ACCEPT_LANGUAGE="en")
    html = html.content.decode()
    body = text(html)
    assert "Size (bytes) 123456" in body
    assert "Database PostgreSQL" in body and "Database SQLite" in body
    assert "Stored files (archive) pharmacrm-20261201.files.tar" in body
    assert "Number of stored files 3" in body and "Stored files checksum" in body
    assert "Key ring restored yes" in body
    labels = set(re.findall(r"<dt>([^<]*)</dt>", html))
    assert not labels & {"bytes", "vendor", "files", "files_count", "files_sha256", "keyring_restored", "key_problems"}
    assert "postgresql" not in body and "sqlite" not in body


@pytest.fixture
def sweeps(users, make_user):
    """Entries of the SLA sweep (breaches with their holder, escalations with whom they went to) and of the
    safety sweep (an overdue hand-off clock), as the workers write them."""
    lin = make_user("linfang")
    lin.display_name = "林芳"
    lin.save()
    audit.record(A.UPDATE, ("servicedesk.slaclock", "", "2"), actor_name="worker",
                 breaches=[{"ticket": "TK-2026-000001", "clock": "first_response",
                            "due_at": "2026-11-18T03:32:00+00:00", "holder": lin.pk},
                           {"ticket": "TK-2026-000002", "clock": "resolution",
                            "due_at": "2026-11-18T04:00:00+00:00", "holder": None}],
                 escalations=[{"ticket": "TK-2026-000001", "level": 1, "clock": "resolution",
                               "reassigned_to": users["manager"].pk}])  # fmt: skip
    audit.record(A.UPDATE, ("safety.safetyclock", "", "1"), actor_name="worker",
                 overdue=[{"clock": 7, "due_at": "2026-11-18T03:32:00+00:00", "kind": "handoff"}])  # fmt: skip
    return lin


def test_sla_sweeps_show_clock_kinds_and_user_names(client_for, sweeps, users):
    body = audit_page(client_for("auditor"), object_type="servicedesk.slaclock")
    assert "Clock: First response" in body and "Clock: Resolution" in body
    assert "Holder: 林芳" in body
    assert f"Reassigned to: {users['manager'].display_name}" in body
    assert "first_response" not in body and f"Holder: {sweeps.pk}" not in body
    body = audit_page(client_for("auditor"), object_type="safety.safetyclock")
    assert "Kind: Hand-off to pharmacovigilance" in body and "handoff" not in body


def test_sla_sweeps_in_chinese_name_the_clock_kind(client_for, sweeps):
    body = audit_page(client_for("auditor"), lang="zh-hans", object_type="servicedesk.slaclock")
    assert "first_response" not in body and "林芳" in body


def test_users_of_sweep_entries_are_named_at_a_constant_number_of_queries(client_for, make_user, users):
    holders = [make_user(f"agent{n}") for n in range(30)]

    def sweep_entry(holder):
        audit.record(A.UPDATE, ("servicedesk.slaclock", "", "1"), actor_name="worker",
                     breaches=[{"ticket": f"TK-2026-{holder.pk:06d}", "clock": "resolution",
                                "due_at": "2026-11-18T03:32:00+00:00", "holder": holder.pk}])  # fmt: skip

    client = client_for("auditor")
    for holder in holders[:3]:
        sweep_entry(holder)

    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            audit_page(client, object_type="servicedesk.slaclock")
        return len(captured.captured_queries)

    few = queries()
    for holder in holders[3:]:
        sweep_entry(holder)
    many = queries()
    assert many == few, (few, many)
    assert "agent29" in audit_page(client, object_type="servicedesk.slaclock")


def test_a_refused_api_call_names_its_endpoint_not_its_view_class(api_for, client_for, users):  # noqa: F811
    rep = api_for("rep")
    assert rep.post("/api/v1/users/", {"username": "x"}, format="json").status_code == 403
    assert rep.patch(f"/api/v1/users/{users['kam'].pk}/", {"display_name": "x"}, format="json").status_code == 403
    assert rep.post("/api/v1/sales/orders/", {}, format="json").status_code == 403
    refused = AuditEntry.objects.filter(action="access_denied")
    assert {e.extra["view"] for e in refused} == {"UserViewSet", "OrderImportView"}
    body = audit_page(client_for("auditor"), action="access_denied")
    assert "Endpoint Users" in body and "Endpoint User " in body and "Endpoint Order import" in body
    for raw in ("UserViewSet", "OrderImportView", "ViewSet"):
        assert raw not in body


def test_endpoints_are_named_in_the_readers_language():
    with translation.override("en"):
        assert audit_endpoint("ProposalViewSet", "/api/v1/keyaccounts/proposals/") == "Key-account proposals"
        assert audit_endpoint("ProposalViewSet", "/api/v1/keyaccounts/proposals/3/decide/") == "Key-account proposal"
        assert audit_endpoint("ProposalViewSet") == "Key-account proposals"  # no path: the list's name
        assert audit_endpoint("NoSuchViewSet", "/api/v1/gone/") == "Unnamed endpoint"
    with translation.override("zh-hans"):
        assert audit_endpoint("UserViewSet", "/api/v1/users/") == "用户"
        assert audit_endpoint("ProposalViewSet", "/api/v1/keyaccounts/proposals/") == "重点客户提名"


# --- 5: an interaction named in the reader's language ------------------------------------------------


@pytest.fixture
def flagged_interaction(users, xiehe):
    """A rep's visit note that mentions a rash, three working days old: its hand-off clock is overdue."""
    from pharmacrm.engagement import services as engagement
    from tests.safety.test_api import REACTION_TEXT

    return engagement.record_interaction(
        users["kam"],
        {"institution": xiehe, "channel": "visit", "subject": "科室拜访", "notes": REACTION_TEXT,
         "received_at": timezone.now() - dt.timedelta(days=6)},
    )  # fmt: skip


def test_the_handoff_list_and_notification_name_the_interaction_in_the_readers_language(
    client_for, flagged_interaction
):
    from pharmacrm.notify.models import Notification
    from pharmacrm.safety import services as safety

    pk = flagged_interaction.pk
    client = client_for("pv")
    body = text(client.get(reverse("safety:cases"), {"due": "all"}, HTTP_ACCEPT_LANGUAGE="en").content.decode())
    assert f"Interaction {pk}" in body and f"interaction {pk}" not in body
    body = text(client.get(reverse("safety:cases"), {"due": "all"}, HTTP_ACCEPT_LANGUAGE="zh-hans").content.decode())
    assert f"互动记录 {pk}" in body and f"interaction {pk}" not in body
    safety.sweep(timezone.now() + dt.timedelta(days=30))
    titles = list(Notification.objects.filter(kind="safety.handoff").values_list("title", flat=True))
    assert titles and all(f"互动记录 {pk}" in t and "interaction" not in t for t in titles)  # zh-Hans: the default


def test_the_audit_trail_keeps_a_language_free_source_and_shows_it_translated(client_for, flagged_interaction):
    from pharmacrm.safety.models import Flag

    pk = flagged_interaction.pk
    entry = AuditEntry.objects.get(object_type="safety.flag", action=A.CREATE)
    assert entry.extra["source"] == f"interaction {pk}"  # recorded in no language
    assert Flag.objects.filter(interaction=flagged_interaction).exists()
    body = audit_page(client_for("auditor"), object_type="safety.flag")
    assert f"Source Interaction {pk}" in body
    body = audit_page(client_for("auditor"), lang="zh-hans", object_type="safety.flag")
    assert f"互动记录 {pk}" in body and f"interaction {pk}" not in body


# --- 6: dose units by their label -------------------------------------------------------------------------


def test_a_case_shows_the_dose_unit_by_its_label_not_its_ucum_code(client_for, users):
    from pharmacrm.safety import services as safety
    from tests.safety.conftest import COMPLETE

    drug = {**COMPLETE["drugs"][0], "dose": "1", "dose_unit": "{tbl}", "route": "口服", "frequency": "每日 2 次"}
    case = safety.create_case(users["pv"], {**COMPLETE, "drugs": [drug],
                                            "received_at": timezone.now() - dt.timedelta(days=1)})  # fmt: skip
    assert case.drugs.get().dose_unit == "{tbl}"  # the record (and the E2B file) keep the code
    html = client_for("pv").get(reverse("safety:case", args=[case.pk]), HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert "1 tablet 口服 每日 2 次" in text(html)  # the unit agrees with the dose (it read "1 tablet(s)")
    assert "{tbl}" not in html


def test_dose_unit_labels_leave_unknown_codes_as_stored(zh_words):
    from pharmacrm.safety.choices import dose_unit_label

    zh_words({("dose unit", "tablet(s)"): "片"})
    with translation.override("zh-hans"):
        assert dose_unit_label("{tbl}") == "片"
    with translation.override("en"):
        assert dose_unit_label("{cap}") == "capsule(s)"
        assert dose_unit_label(" mg ") == "mg" and dose_unit_label("ug") == "µg" and dose_unit_label("[iU]") == "IU"
        assert dose_unit_label("mmol") == "mmol" and dose_unit_label(None) == ""


# --- 7: download names in the page's language ------------------------------------------------------------


def test_the_order_line_export_is_named_in_the_pages_language(client_for):
    client = client_for("manager")
    day = f"{timezone.localdate():%Y%m%d}"
    response = client.get(reverse("sales:orders-export"), HTTP_ACCEPT_LANGUAGE="en")
    assert response.status_code == 200
    assert f'filename="order-lines-{day}.csv"' in response["Content-Disposition"]
    response = client.get(reverse("sales:orders-export"), HTTP_ACCEPT_LANGUAGE="zh-hans")
    assert response.status_code == 200
    assert f"filename*=utf-8''{quote('订单行')}-{day}.csv" in response["Content-Disposition"]


# --- QA session 59: a record's title is no person's professional title -----------------------------------------


def test_the_title_of_an_agreement_opportunity_course_or_action_is_not_a_persons_professional_title(
    users, xiehe, client_for, zh_words
):
    """The plain "Title" is a person's 职称 (主任医师); the title field of a cooperation agreement and its projects, an
    opportunity, a course, market intelligence, an improvement action, a playbook action, and those records' titles
    in the audit trail read 职称 too."""
    from pharmacrm.cooperation.models import Agreement, Project
    from pharmacrm.customers.models import Person
    from pharmacrm.engagement.models import StageAction
    from pharmacrm.keyaccounts.models import Meeting
    from pharmacrm.market.models import Intelligence
    from pharmacrm.notify.models import Notification
    from pharmacrm.safety.models import CaseTask
    from pharmacrm.sales.models import Opportunity
    from pharmacrm.servicedesk.models import ImprovementAction
    from pharmacrm.training.models import Course, Material

    zh_words({("record title", "Title"): "标题", ("record title", "title"): "标题"})
    pages = ["/cooperation/new/", "/sales/pipeline/new/", "/training/courses/new/", "/market/intelligence/new/",
             "/service/improvements/new/"]  # fmt: skip
    for url in pages:
        body = client_for("manager").get(url, HTTP_ACCEPT_LANGUAGE="zh-hans").content.decode()
        assert "职称" not in text(body), url
        assert "标题" in text(body), url
    with translation.override("zh-hans"):
        for model in (Agreement, Project, Opportunity, Course, Material, Intelligence, ImprovementAction, StageAction,
                      Meeting, Notification, CaseTask):  # fmt: skip
            assert str(model._meta.get_field("title").verbose_name) == "标题", model
        assert str(Person._meta.get_field("title").verbose_name) == "职称"  # a person's is theirs
    page = client_for("manager").get(f"/customers/institutions/{xiehe.pk}/", HTTP_ACCEPT_LANGUAGE="zh-hans")
    assert "职称" in text(page.content.decode())  # the people of an institution: their professional titles


def test_a_cooperation_projects_goal_and_an_agreements_terms_are_not_a_communication_goal_and_terminology(
    users, xiehe, client_for, zh_words
):
    """A cooperation project's goal read 沟通目标 (the communication plans' goal) and an agreement's terms 术语 (the
    safety screening's terms): the plain "Goal" and "Terms" translate to those."""
    import datetime as dt

    from pharmacrm.cooperation import services as cooperation

    zh_words({("cooperation project", "Goal"): "项目目标", ("agreement", "Terms"): "协议条款"})
    today = timezone.localdate()
    agreement = cooperation.create_agreement(users["manager"], {
        "institution": xiehe.pk, "kind": "academic", "title": "心内科学术合作", "company_signer": "王总",
        "customer_signer": "李院长", "start_date": today - dt.timedelta(days=30), "end_date": today + dt.timedelta(days=300),
        "terms": "双方权利义务", "owner": users["manager"].pk})  # fmt: skip
    page = text(client_for("manager").get(f"/cooperation/{agreement.pk}/", HTTP_ACCEPT_LANGUAGE="zh-hans").content.decode())
    assert "协议条款" in page and "术语" not in page
    from pharmacrm.cooperation.forms import ProjectForm
    from pharmacrm.cooperation.models import Project

    with translation.override("zh-hans"):  # the project's form, page and audit entries
        assert str(ProjectForm.base_fields["goal"].label) == "项目目标"
        assert str(Project._meta.get_field("goal").verbose_name) != "沟通目标"


def test_a_level_or_stage_history_reads_before_and_after_not_start_and_end_dates(client_for, zh_words, users):
    """A loyalty member's level history and an opportunity's stage history headed the level or stage moved from and
    to 起始日期 / 截止日期 (a date range's From and To, what the plain words translate to)."""
    from pharmacrm.customers import services as customers
    from pharmacrm.customers.models import Region
    from pharmacrm.loyalty import services as loyalty
    from pharmacrm.sales import pipeline

    zh_words({("change", "From"): "变更前", ("change", "To"): "变更后"})
    shop = customers.create_institution(users["admin"], {"name": "同仁堂大药房", "kind": "pharmacy",
                                                         "region": Region.objects.get(code="110105")})  # fmt: skip
    member = loyalty.join(users["manager"], shop)
    page = text(client_for("manager").get(f"/loyalty/members/{member.pk}/", HTTP_ACCEPT_LANGUAGE="zh-hans").content.decode())
    assert "日期 变更前 变更后" in page and "起始日期 截止日期" not in page
    opportunity = pipeline.create(users["manager"], {"institution": shop, "title": "年度采购协议", "amount_fen": 5_000_000,
                                                     "close_date": timezone.localdate() + dt.timedelta(days=30)})
    page = client_for("manager").get(f"/sales/pipeline/{opportunity.pk}/", HTTP_ACCEPT_LANGUAGE="zh-hans")
    assert "变更前 变更后" in text(page.content.decode()) and "起始日期 截止日期" not in text(page.content.decode())


def test_a_loyalty_member_is_a_member_of_the_programme_not_of_a_team(client_for, zh_words, users):
    """The approval inbox headed the customer asking for a reward 成员 (a team's member) and the overview export's
    members per level 成员; a loyalty member is a 会员."""
    import io

    from openpyxl import load_workbook

    from pharmacrm.customers import services as customers
    from pharmacrm.customers.models import Region
    from pharmacrm.loyalty import services as loyalty
    from pharmacrm.loyalty.models import EntryKind, PointsEntry

    zh_words({("loyalty", "Member"): "会员", ("loyalty", "Members"): "会员数"})
    shop = customers.create_institution(users["admin"], {"name": "同仁堂大药房", "kind": "pharmacy",
                                                         "region": Region.objects.get(code="110105")})  # fmt: skip
    member = loyalty.join(users["manager"], shop)
    PointsEntry.objects.create(member=member, kind=EntryKind.EARN, points=500, month=dt.date(2026, 3, 1))
    reward = loyalty.create_reward(users["manager"], {"name": "产品试用装", "kind": "trial", "points_cost": 200,
                                                      "value_cny": "350.00"})  # fmt: skip
    loyalty.request_redemption(users["manager"], member, reward)
    inbox = client_for("admin").get("/loyalty/approvals/", HTTP_ACCEPT_LANGUAGE="zh-hans").content.decode()
    assert "<th>会员</th>" in inbox and "<th>成员</th>" not in inbox
    export = client_for("manager").get("/loyalty/overview/?format=xlsx", HTTP_ACCEPT_LANGUAGE="zh-hans")
    levels = load_workbook(io.BytesIO(export.content)).worksheets[1]
    assert [c.value for c in levels[1]][1] == "会员数"
