"""No clear personal data reaches the roles that see it masked, on any page, panel, download or API answer they can
reach. The demo (scale 0.05, loaded once for the module), one of its people given every personal field and contact
details typed into their notes, their interaction's notes and a consent's evidence, a reveal of their data with a
phone number in its reason, a survey comment and a stage task's note with one, the other free text about customers
(an opportunity's title, competitor and next step, a loyalty ledger's reason and a delivery note, a quality review's
findings, a key account's service item and meeting, a cooperation agreement's, project's and task's title and an
acceptance's standards, a late report's reason, a dismissed flag's reason, a CAPA's action and effectiveness check, a
licence's business scope, the competitor catalogue's notes …) planted with one, and another person deleted with a consent's
evidence (kept in the audit trail); then each masked role (agent, expert, support, after-sales, analyst,
auditor) walks everything the navigation reaches from the home page — pages, the panels a page loads, its exports
(CSV, Excel, PDF) —, the search page, its suggestions and the API's search, the API from its root, and the audit page
and API for every kind of record; every answer is searched for any person's phone, landline, e-mail, ID card number,
birthday or home address, any contact detail typed into free text about customers, and the other personal data stored
encrypted (a ticket's caller, a safety case's reporter), in clear. Page titles, tooltips, data-* attributes and JSON
embedded in a page are in the HTML searched. A read through the audited reveal with a reason is the only way to them,
and the walk never states one (docs/security.md)."""

from __future__ import annotations

import datetime
import html
import io
import json
import re
import zipfile
from collections import deque
from urllib.parse import quote, unquote

import pytest
from django.test import Client

from pharmacrm.core.models import User
from pharmacrm.core.personal import FREE_TEXT_OF
from pharmacrm.customers import normalise
from tests.conftest import demo_loaded, otp_verify

pytestmark = pytest.mark.django_db

MASKED_ROLES = ("agent", "expert", "support", "aftersales", "analyst", "auditor")
# links that change nothing and show no record: signing out, the language switch, static files; and a cooperation
# agreement's generated PDF, the contract as issued, which prints its title and terms and its projects' titles and goals
# as typed (docs/security.md)
SKIP = re.compile(r"/logout|/i18n/|/static/|/mail-open/|/accounts/(?:login|otp|password)|/cooperation/\d+/agreement\.pdf")
MAX_ANSWERS = 700  # per role
PHONE = "13912345678"
LANDLINE = "01088886666"
EMAIL = "li.walker@example.org"
ID_NUMBER = "110105197503151236"
BIRTHDAY = datetime.date(1975, 3, 15)
ADDRESS = "北京市朝阳区光华路99号7栋1203室"
IN_NOTES = "家属电话 13698765432，邮箱 family.walker@example.net"
# contact details typed into a consent's evidence (the person's own, and a deleted person's, kept in the deletion's
# audit entry), a reason given for a reveal and a survey's comment
TYPED = {
    "13711112222": "consent evidence", "evid.walker@example.com": "consent evidence",
    "13733334444": "a deleted person's consent evidence", "13755556666": "a reveal's reason",
    "13766667777": "a survey comment",
}


@pytest.fixture(scope="module")
def demo(django_db_setup, django_db_blocker, tmp_path_factory):
    with demo_loaded(django_db_blocker, tmp_path_factory.mktemp("demo-var")):
        with django_db_blocker.unblock():
            _walked_person()
        yield


def _walked_person():
    """A demo person with every personal field set and contact details in their notes, and an interaction about
    them with a phone number in its notes."""
    from django.core.exceptions import ValidationError

    from pharmacrm.cooperation.models import Acceptance, Agreement, Project, Task
    from pharmacrm.core import personal
    from pharmacrm.customers import services
    from pharmacrm.customers.models import Person
    from pharmacrm.engagement.models import CommunicationPlan, Interaction, StageTask
    from pharmacrm.keyaccounts.models import Meeting, PlanItem
    from pharmacrm.licences.models import Licence
    from pharmacrm.loyalty.models import PointsEntry, Redemption
    from pharmacrm.market.models import Competitor, CompetitorProduct
    from pharmacrm.safety.models import Flag, QualityComplaint, SafetyCase, Submission
    from pharmacrm.sales.models import Opportunity
    from pharmacrm.servicedesk.models import ImprovementAction, QualityReview, Survey

    admin = User.objects.get(username="admin")
    person = Person.objects.active().filter(interactions__isnull=False).order_by("pk").first()
    person = person or Person.objects.active().order_by("pk").first()
    services.update_person(admin, person, {
        "mobile": PHONE, "landline": LANDLINE, "email": EMAIL, "id_number": ID_NUMBER, "birthday": BIRTHDAY,
        "home_address": ADDRESS, "notes": IN_NOTES,
    })  # fmt: skip
    interaction = Interaction.objects.filter(person=person).order_by("pk").first()
    if interaction is not None:
        Interaction.objects.filter(pk=interaction.pk).update(notes="请回电 138 2222 3333 或 wang.walker@example.com")
    consent = {"purpose": "surveys", "channel": "phone", "status": "given"}
    services.record_consent(admin, person, {**consent, "evidence": "电话 13711112222 确认，evid.walker@example.com"})
    for other in Person.objects.active().exclude(pk=person.pk).order_by("-pk")[:20]:
        services.record_consent(admin, other, {**consent, "evidence": "家属电话 13733334444"})
        try:
            services.delete_customer(admin, other)
            break
        except ValidationError:  # tickets or orders keep this one: the next
            other.consents.all().delete()
    personal.contact_view(User.objects.get(username="agent"), [person], reveal_reason="客户来电 13755556666 核实")
    StageTask.objects.filter(pk__in=StageTask.objects.filter(status="done").order_by("pk")[:1].values("pk")) \
        .update(note="已电话联系 137 8888 9999")  # fmt: skip
    Survey.objects.filter(pk__in=Survey.objects.filter(answered_at__isnull=False).order_by("pk")[:1].values("pk")) \
        .update(comment="请致电 13766667777")  # fmt: skip
    # an opportunity's next step, title and competitor, a communication plan's goal, an improvement action's title, a
    # points entry's reason and a redemption's delivery note, a quality review's findings, a service plan item's
    # service and a service meeting's title (FREE_TEXT_OF)
    for model, field, text in ((Opportunity, "next_step", "联系李主任 137 2121 3434"),
                               (Opportunity, "title", "王主任 137 1010 2020 引进项目"),
                               (Opportunity, "competitor", "竞品代表 rival.walker@example.com"),
                               (CommunicationPlan, "goal", "重点联系 137 4545 5656"),
                               (ImprovementAction, "title", "回电 137 6767 7878"),
                               (PointsEntry, "reason", "客户王主任 137 3030 4040 来电补分"),
                               (Redemption, "delivery_note", "快递至王主任 137 5050 6060"),
                               (QualityReview, "comment", "未核实来电人 137 7070 8080 的身份"),
                               (PlanItem, "title", "每月回访王主任 137 9090 1212"),
                               (Meeting, "title", "与王主任 137 1313 1414 沟通会"),
                               (Agreement, "title", "王主任 136 1010 2020 学术合作"),
                               (Project, "title", "学术会议，对接人 coop.walker@example.com"),
                               (Task, "title", "联系王主任 136 3030 4040 确认场地"),
                               (Acceptance, "standards", "签到表由 136 5050 6060 提供"),
                               (Submission, "late_reason", "报告人王医生 136 7070 8080 补充资料延迟"),
                               (QualityComplaint, "defect", "投诉人 136 9090 1212 反映瓶盖渗漏"),
                               (Flag, "excerpt", "患者家属电话 136 1313 1414"),
                               (SafetyCase, "sender_comment", "经与报告人 136 1515 1616 核实"),
                               (Competitor, "notes", "华东区医药代表张经理 136 1717 1818"),
                               (CompetitorProduct, "notes", "样品申请 rival.sample@example.com")):  # fmt: skip
        model.objects.filter(pk__in=model.objects.order_by("pk")[:1].values("pk")).update(**{field: text})
    # a licence showing its business scope as printed (none of the categories ticked)
    licence = next((li for li in Licence.objects.order_by("pk") if not li.scope), None)
    if licence is not None:
        Licence.objects.filter(pk=licence.pk).update(scope_note="经营范围详询李经理 136 1919 2020")
    _safety_texts()
    return person


def _safety_texts() -> None:
    """What pharmacovigilance writes that the auditor reads, written through the services so that the audit trail keeps
    it too: a flag dismissed with a reason, a CAPA action (which names its entries) and its effectiveness check."""
    from pharmacrm.safety import services
    from pharmacrm.safety.models import Capa, Flag

    pv = User.objects.get(username="pv")
    flag = Flag.objects.filter(status="pending").order_by("pk").first()
    if flag is not None:
        services.dismiss_flag(pv, flag, reason="已与客户 135 1010 2020 核实，非不良反应")
    capa = Capa.objects.select_related("complaint__case").order_by("pk").first()
    if capa is not None:
        capa = services.add_capa(pv, capa.complaint.case, {"action": "回访投诉人 135 3030 4040", "owner": pv,
                                                           "due_date": datetime.date.today()})  # fmt: skip
        services.update_capa(pv, capa, {"status": "effective", "effectiveness_check": "已电话告知 135 5050 6060"},
                             version=capa.version)  # fmt: skip


def _secrets() -> dict[str, str]:
    """{what is searched for (normalised): what it is} — every person's personal fields, and the contact details
    in the free text about customers (FREE_TEXT_OF), as the pages would write them in clear."""
    from django.apps import apps

    from pharmacrm.customers.models import Person

    found: dict[str, str] = dict(TYPED)
    for p in Person.objects.all():
        for field in ("mobile", "landline"):
            value = getattr(p, field)
            if value:
                found[re.sub(r"\D", "", value.partition("转")[0])] = f"{field} of person {p.pk}"
        if p.email:
            found[p.email.lower()] = f"email of person {p.pk}"
        if p.id_number:
            found[p.id_number.upper()] = f"id_number of person {p.pk}"
        if p.birthday:
            found[p.birthday.isoformat()] = f"birthday of person {p.pk}"
        if p.home_address:
            found[p.home_address] = f"home_address of person {p.pk}"
    for label in FREE_TEXT_OF:
        model = apps.get_model(label)
        for obj in model._base_manager.all():
            for field in FREE_TEXT_OF[label]:
                for token in _contacts(getattr(obj, field) or ""):
                    found[token] = f"{field} of {label} {obj.pk}"
    for label, fields in ENCRYPTED_ELSEWHERE.items():
        model = apps.get_model(label)
        for obj in model._base_manager.all():
            for field in fields:
                value = getattr(obj, field)
                if isinstance(value, datetime.date):
                    found[value.isoformat()] = f"{field} of {label} {obj.pk}"
                for token in _contacts(value if isinstance(value, str) else ""):
                    found.setdefault(token, f"{field} of {label} {obj.pk}")
    return found


# the other personal data stored encrypted: a ticket's caller, the customer's addresses on its mails, where a survey
# was mailed, a safety case's reporter and patient
ENCRYPTED_ELSEWHERE = {
    "servicedesk.ticket": ("caller_phone", "reply_email"),
    "servicedesk.ticketmessage": ("sender", "recipient"),
    "servicedesk.survey": ("sent_to",),
    "safety.safetycase": ("reporter_contact", "patient_birth_date"),
}


def _contacts(text: str) -> list[str]:
    """The contact details in a text, normalised (digits of a phone, an address in lower case)."""
    out = []
    for start, end, _mask in normalise._contact_spans(text):
        value = text.translate(normalise._FULL_WIDTH)[start:end]
        out.append(value.lower() if "@" in value else re.sub(r"\D", "", value).removeprefix("0086").upper()
                   if not re.fullmatch(r"[0-9]{17}[0-9Xx]", value) else value.upper())  # fmt: skip
    return [o[2:] if o.startswith("86") and len(o) == 13 else o for o in out]


DATE = re.compile(r"(?<!\d)(19[4-9]\d|200\d)-(\d{2})-(\d{2})(?!\d)|(19[4-9]\d|200\d)年(\d{1,2})月(\d{1,2})日")


def _leaks(text: str, secrets: dict[str, str], addresses: list[str], typed: str = "") -> set[str]:
    """What of `secrets` is in `text`, but for what the reader typed into the address (a search by a phone number
    shows the number searched for)."""
    own = set(_contacts(typed))
    tokens = _contacts(text) + re.findall(r"(?<!\d)\d{10,12}(?!\d)", text)
    hits = {secrets[t] for t in tokens if t in secrets and t not in own}
    for m in DATE.finditer(text):
        y, mo, d = (int(g) for g in (m.groups()[:3] if m.group(1) else m.groups()[3:]))
        try:
            iso = datetime.date(y, mo, d).isoformat()
        except ValueError:
            continue
        if iso in secrets:
            hits.add(secrets[iso])
    hits |= {secrets[a] for a in addresses if a in text}
    return hits


def _text(response) -> str:
    body = b"".join(response.streaming_content) if response.streaming else response.content
    kind = response.get("Content-Type", "")
    if body[:2] == b"PK":  # a workbook
        with zipfile.ZipFile(io.BytesIO(body)) as z:
            return "\n".join(z.read(n).decode("utf-8", "replace") for n in z.namelist() if n.endswith(".xml"))
    if body[:4] == b"%PDF":
        from pypdf import PdfReader

        return "\n".join(page.extract_text() or "" for page in PdfReader(io.BytesIO(body)).pages)
    text = body.decode("utf-8-sig", "replace")
    if "json" in kind:
        try:  # the JSON's strings as written (\u escapes read)
            return json.dumps(json.loads(text), ensure_ascii=False)
        except ValueError:
            return text
    return html.unescape(text)


def _links(text: str) -> list[str]:
    found = re.findall(r'(?:href|hx-get|data-url|data-src|action)="(/[^"#]*)"', text)
    found += re.findall(r'"(?:https?://testserver)?(/api/v1/[^"\s]*)"', text)
    return [html.unescape(u) for u in found if not SKIP.search(u)]


def _kind(url: str) -> str:
    path, _, query = url.partition("?")
    keys = sorted({p.split("=")[0] for p in query.split("&") if p and not p.startswith("page=")})
    return re.sub(r"\d+", "N", path) + ("?" + ",".join(keys) if keys else "")


def _walk(role: str, start: list[str], secrets, addresses) -> tuple[dict[str, set[str]], int]:
    user = User.objects.get(username=role)
    client = Client()
    client.force_login(user)
    otp_verify(client, user)
    kinds: set[str] = set()
    seen: set[str] = set()
    leaks: dict[str, set[str]] = {}
    queue = deque(start)
    read = 0
    while queue and read < MAX_ANSWERS:
        url = queue.popleft()
        kind = _kind(url)
        if url in seen or (kind in kinds and url not in start):
            continue
        kinds.add(kind)
        seen.add(url)
        response = client.get(url, HTTP_HX_REQUEST="true" if "/panel" in url else None)
        if response.status_code != 200:
            continue
        read += 1
        text = _text(response)
        hits = _leaks(text, secrets, addresses, typed=unquote(url))
        if hits:
            leaks[url] = hits
        queue.extend(_links(text))
    return leaks, read


def _planted_pages() -> list[str]:
    """The pages and API answers showing the texts _walked_person planted beyond the person's (the first record of
    each kind): the walk's one page per kind of address may reach another record."""
    from pharmacrm.cooperation.models import Agreement, Project
    from pharmacrm.keyaccounts.models import Meeting, PlanItem
    from pharmacrm.licences.models import Licence
    from pharmacrm.loyalty.models import PointsEntry, Redemption
    from pharmacrm.market.models import Competitor, CompetitorProduct
    from pharmacrm.safety.models import Flag, Submission
    from pharmacrm.sales.models import Opportunity
    from pharmacrm.servicedesk.models import QualityReview

    def first(model):
        return model.objects.order_by("pk").first()

    pages = []
    if (opp := first(Opportunity)) is not None:
        pages += [f"/sales/pipeline/{opp.pk}/", f"/api/v1/sales/opportunities/{opp.pk}/",
                  "/sales/pipeline/export.xlsx", "/sales/pipeline/?view=list"]  # fmt: skip
    if (entry := first(PointsEntry)) is not None:
        pages += [f"/loyalty/members/{entry.member_id}/", f"/api/v1/loyalty/members/{entry.member_id}/"]
    if (redemption := first(Redemption)) is not None:
        pages += [f"/api/v1/loyalty/redemptions/{redemption.pk}/"]
    if (review := first(QualityReview)) is not None:
        pages += [f"/service/tickets/{review.ticket_id}/", f"/api/v1/service/quality-reviews/{review.pk}/"]
    if (item := first(PlanItem)) is not None:
        pages += [f"/keyaccounts/{item.plan.account_id}/", f"/api/v1/keyaccounts/plan-items/{item.pk}/",
                  "/keyaccounts/report.xlsx"]  # fmt: skip
    if (meeting := first(Meeting)) is not None:
        pages += [f"/keyaccounts/{meeting.account_id}/", f"/api/v1/keyaccounts/meetings/{meeting.pk}/"]
    if (agreement := first(Agreement)) is not None:
        pages += [f"/cooperation/{agreement.pk}/", f"/api/v1/cooperation/agreements/{agreement.pk}/",
                  f"/cooperation/customer/{agreement.institution_id}/", "/cooperation/?format=xlsx"]  # fmt: skip
    if (project := first(Project)) is not None:
        pages += [f"/cooperation/projects/{project.pk}/", f"/api/v1/cooperation/projects/{project.pk}/",
                  "/cooperation/tasks/?open=0"]  # fmt: skip
    if (submission := first(Submission)) is not None:
        pages += [f"/safety/cases/{submission.case_id}/", f"/api/v1/safety/cases/{submission.case_id}/submissions/"]
    for flag in Flag.objects.exclude(reason="").order_by("-decided_at")[:1]:
        pages += [f"/api/v1/safety/flags/{flag.pk}/"]
    for licence in Licence.objects.filter(scope_note__contains="136 1919 2020")[:1]:
        pages += [f"/licences/customer/{licence.institution_id}/", f"/api/v1/licences/{licence.pk}/"]
    if (company := first(Competitor)) is not None:
        pages += [f"/market/competitors/{company.pk}/", f"/api/v1/market/competitors/{company.pk}/"]
    if (product := first(CompetitorProduct)) is not None:
        pages += [f"/market/products/{product.pk}/", f"/api/v1/market/competitor-products/{product.pk}/"]
    return pages


def test_masked_roles_reach_no_clear_personal_data(demo):
    from pharmacrm.core.models import AuditEntry
    from pharmacrm.customers.models import Person
    from pharmacrm.engagement.models import Interaction
    from pharmacrm.servicedesk.models import Survey

    person = Person.objects.get(notes=IN_NOTES)
    secrets = _secrets()
    assert secrets[PHONE] and secrets[ID_NUMBER] and secrets["13698765432"]
    addresses = [k for k, v in secrets.items() if v.startswith("home_address")]
    start = [
        "/", f"/customers/people/{person.pk}/", f"/customers/institutions/{person.institution_id}/",
        f"/customers/search/?q={person.name}", f"/customers/people/?q={person.name}",
        f"/api/v1/search/?q={person.name}", f"/api/v1/people/{person.pk}/", "/api/v1/",
        f"/accounts/audit/?object_type=customers.person&object_id={person.pk}",
        f"/api/v1/audit/?object_type=customers.person&object_id={person.pk}",
        "/customers/search/?q=家属电话", "/customers/search/?q=家属电话&as=suggest", "/api/v1/search/?q=家属电话",
        f"/customers/search/?q={person.name}&as=suggest", "/api/v1/audit/?page_size=200", "/accounts/audit/",
        # a whole phone number or e-mail address finds its person (audited): the answer shows nothing else in clear
        f"/customers/search/?q={PHONE}", f"/customers/search/?q={quote(EMAIL)}&as=suggest", f"/api/v1/search/?q={PHONE}",
        f"/customers/people/?q={PHONE}", "/customers/export/people.csv", "/customers/export/institutions.csv",
        "/api/v1/export/people.csv", "/api/v1/export/people.xlsx", "/api/v1/people/", "/api/v1/consents/",
        "/interactions/stage-tasks/export.xlsx?scope=all&status=any", "/api/v1/engagement/stage-tasks/?page_size=200",
    ]
    # the records the typed details are in: the person's interaction, the survey's ticket or campaign
    interaction = Interaction.objects.filter(person=person).order_by("pk").first()
    if interaction is not None:
        start += [f"/interactions/{interaction.pk}/", f"/api/v1/interactions/{interaction.pk}/"]
    survey = Survey.objects.filter(comment__contains="13766667777").first()
    if survey is not None and survey.ticket_id:
        start += [f"/service/tickets/{survey.ticket_id}/", f"/api/v1/surveys/?ticket={survey.ticket_id}"]
    if survey is not None and survey.campaign_id:
        start += [f"/service/surveys/{survey.campaign_id}/", f"/service/surveys/{survey.campaign_id}/export.xlsx",
                  f"/api/v1/survey-campaigns/{survey.campaign_id}/results/"]  # fmt: skip
    # the records the other planted texts are in (FREE_TEXT_OF), their pages and API answers
    start += _planted_pages()
    # the audit trail of every kind of record, deleted ones included, on the page and through the API
    for kind in AuditEntry.objects.order_by().values_list("object_type", flat=True).distinct():
        start += [f"/accounts/audit/?object_type={kind}", f"/api/v1/audit/?object_type={kind}&page_size=200"]
    found = {}
    for role in MASKED_ROLES:
        leaks, read = _walk(role, start, secrets, addresses)
        assert read > 60, (role, read)
        found.update({f"{role} {url}": sorted(hits) for url, hits in leaks.items()})
    assert found == {}, "\n".join(f"{k}: {v}" for k, v in found.items())


