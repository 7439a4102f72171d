"""The rows the product ships — default ticket categories, business calendars, SLA policies, reporting
rules — read in each user's language until an administrator renames them; a new name is shown as written.
Editing such a row in English keeps its stored name."""

from __future__ import annotations

from django.urls import reverse
from django.utils import translation

from pharmacrm.core import builtin
from pharmacrm.core.deferred import Message, freeze, render_in
from pharmacrm.safety.models import ReportingRule
from pharmacrm.servicedesk import services
from pharmacrm.servicedesk.models import BusinessCalendar, SlaPolicy, TicketCategory

EN = {"HTTP_ACCEPT_LANGUAGE": "en"}
HANT = {"HTTP_ACCEPT_LANGUAGE": "zh-hant"}


def test_the_settings_lists_show_the_shipped_names_in_the_readers_language(client_for):
    c = client_for("admin")
    url = reverse("servicedesk:settings-categories")
    english, traditional, simplified = (c.get(url, **EN).content.decode(), c.get(url, **HANT).content.decode(),
                                        c.get(url).content.decode())  # fmt: skip
    assert "Medication error" in english and "Adverse drug reaction" in english and "用药错误" not in english
    assert "用藥錯誤" in traditional and "藥品不良反應" in traditional and "用药错误" not in traditional
    assert "用药错误" in simplified and "Medication error" not in simplified
    policies = c.get(reverse("servicedesk:settings-policies"), **EN).content.decode()
    assert "Urgent (24×7)" in policies and "General issues (working days)" in policies
    assert "Around the clock (24×7)" in policies  # the policies' calendars
    calendars = c.get(reverse("servicedesk:settings-calendars"), **HANT).content.decode()
    assert "工作日曆（中國大陸）" in calendars and "全天候（7×24 小時）" in calendars


def test_a_renamed_row_shows_its_new_name_to_everyone(client_for, users):
    other = TicketCategory.objects.get(code="other")
    c = client_for("admin")
    url = reverse("servicedesk:settings-category", args=[other.pk])
    form = c.get(url, **EN).context["form"]
    data = {**form.initial, "name": "其它问题", "active": "on", "safety_relevant": ""}
    data = {k: ("" if v is None else v) for k, v in data.items()}
    assert c.post(url, data, **EN).status_code == 302
    other.refresh_from_db()
    assert other.name == "其它问题"
    page = c.get(reverse("servicedesk:settings-categories"), **EN).content.decode()
    assert "其它问题" in page
    with translation.override("en"):
        assert str(other) == "其它问题" and TicketCategory.objects.get(code="drug_info").label == (
            "Drug information enquiry"
        )


def test_editing_a_shipped_row_in_english_keeps_its_stored_name_and_says_how_it_is_shown(client_for):
    category = TicketCategory.objects.get(code="medication_error")
    c = client_for("admin")
    url = reverse("servicedesk:settings-category", args=[category.pk])
    page = c.get(url, **EN)
    form = page.context["form"]
    assert form.initial["name"] == "用药错误"  # the field holds the stored name
    assert "each user reads it in their own language (here: “Medication error”)" in form.fields["name"].help_text
    html = page.content.decode()
    assert "Category “Medication error”" in html
    data = {k: ("" if v is None else v) for k, v in {**form.initial, "default_priority": "high"}.items()}
    data["active"] = "on" if form.initial.get("active") else ""
    data["safety_relevant"] = "on" if form.initial.get("safety_relevant") else ""
    assert c.post(url, data, **EN).status_code == 302
    category.refresh_from_db()
    assert (category.name, category.default_priority) == ("用药错误", "high")
    renamed = TicketCategory.objects.create(code="x", name="自定义分类", default_priority="low",
                                            default_complexity="general")  # fmt: skip
    form = c.get(reverse("servicedesk:settings-category", args=[renamed.pk]), **EN).context["form"]
    assert "reads it in their own language" not in str(form.fields["name"].help_text)


def test_the_ticket_pages_and_pickers_name_the_category_in_the_readers_language(users, xiehe, client_for):
    ticket = services.create_ticket(users["agent"], {
        "subject": "说明书咨询", "channel": "phone", "category": "drug_info", "institution": xiehe,
    })  # fmt: skip
    c = client_for("agent")
    page = c.get(reverse("servicedesk:ticket", args=[ticket.pk]), **HANT).content.decode()
    assert "藥品資訊諮詢" in page
    queue = c.get(reverse("servicedesk:queue"), **EN).content.decode()
    assert ">Drug information enquiry<" in queue  # the row and the category filter's option
    assert "Drug information enquiry</option>" in queue


def test_the_reporting_rules_read_in_each_language_whichever_language_they_were_shipped_in(client_for):
    c = client_for("pv")
    listing = c.get(reverse("safety:rules")).content.decode()  # zh-hans
    assert "死亡病例：立即报告（24 小时内）" in listing and "FDA 15 日警示报告（严重且非预期）" in listing
    english = c.get(reverse("safety:rules"), **EN).content.decode()
    assert "Death: report immediately (within 24 hours)" in english
    assert "FDA 15-day alert report (serious and unexpected)" in english
    rule = ReportingRule.objects.get(code="CN-DEATH")
    # a notification about the rule's clock names it in each reader's language
    spec = freeze(Message(translation.gettext_lazy("%(number)s is overdue: %(rule)s (due %(due)s)"),
                          number="AE-2026-0001", rule=builtin.text(rule.name), due="2026-03-02 10:00"))  # fmt: skip
    assert render_in("en", spec) == "AE-2026-0001 is overdue: Death: report immediately (within 24 hours) (due 2026-03-02 10:00)"
    assert "死亡病例：立即報告（24 小時內）" in render_in("zh-hant", spec)
    assert "死亡病例：立即报告（24 小时内）" in render_in("zh-hans", spec)


def test_every_shipped_name_is_registered_and_reads_back_as_stored_in_its_own_language(db):
    stored = [*BusinessCalendar.objects.values_list("name", flat=True), *SlaPolicy.objects.values_list("name", flat=True),
              *TicketCategory.objects.values_list("name", flat=True), *ReportingRule.objects.values_list("name", flat=True)]  # fmt: skip
    assert len(stored) == 2 + 3 + 10 + 9  # calendars, SLA policies, categories, reporting rules (CN-FOREIGN-SERIOUS the 9th)
    for name in stored:
        assert builtin.text(name) is not name, f"{name} is shipped but has no translation"
        with translation.override("zh-hans"):
            simplified = str(builtin.text(name))
        with translation.override("en"):
            english = str(builtin.text(name))
        assert name in (simplified, english), f"{name}: the catalogue's translation differs from the stored name"


def test_the_history_names_a_category_change_in_the_readers_language(users, xiehe, client_for):
    from pharmacrm.servicedesk import editing

    ticket = services.create_ticket(users["agent"], {
        "subject": "说明书咨询", "channel": "phone", "category": "drug_info", "institution": xiehe,
    })  # fmt: skip
    ticket.refresh_from_db()
    editing.edit_ticket(users["agent"], ticket, {"category": "medication_error"}, version=ticket.version)
    page = client_for("agent").get(reverse("servicedesk:ticket", args=[ticket.pk]), **EN).content.decode()
    assert "Drug information enquiry → Medication error" in page and "用药错误" not in page


def test_the_api_gives_the_stored_name_and_the_label_in_the_requests_language(users, api_for):
    categories = api_for("admin", lang="en").get("/api/v1/ticket-categories/")
    assert categories.status_code == 200, categories.content
    rows = categories.json()
    rows = rows["results"] if isinstance(rows, dict) else rows
    med = next(r for r in rows if r["code"] == "medication_error")
    assert (med["name"], med["label"]) == ("用药错误", "Medication error")
    rules = api_for("pv", lang="zh-hant").get("/api/v1/safety/reporting-rules/")
    assert rules.status_code == 200, rules.content
    rows = rules.json()
    rows = rows["results"] if isinstance(rows, dict) else rows
    death = next(r for r in rows if r["code"] == "CN-DEATH")
    assert death["label"] == "死亡病例：立即報告（24 小時內）" and death["name"] == "死亡病例：立即报告（24 小时内）"
