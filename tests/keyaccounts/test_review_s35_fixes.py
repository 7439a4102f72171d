"""Session 35 review of the key-account programme, as its users meet it:

1. A service meeting could be dated before the customer was listed as a key account, and such a meeting counted in
   the progress report as one of the programme's.
2. "Issue again" made a new copy of a draft agreement whose plan version had been replaced by a newer one since it was
   generated: the customer was sent services no longer in force.
3. Saving a trial offer's update that changed nothing (the same answer, the same notes) made a new version and an
   audit entry: a colleague's page loaded before was then refused as stale, for no change at all.
4. A department's opinion could be revised in the instant after the proposal went to leadership: the opinion's save
   checked the proposal's state as it had read it, without holding it. (The threaded tests run on PostgreSQL; on
   SQLite writers are serialised from the start of their transaction, and the refusal is checked in sequence.)
"""

from __future__ import annotations

import datetime as dt
import io
import subprocess

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse
from django.utils import timezone, translation
from openpyxl import load_workbook

from pharmacrm.core.models import AuditEntry
from pharmacrm.customers.models import Institution
from pharmacrm.keyaccounts import services
from pharmacrm.keyaccounts.choices import PlanArea, PlanStatus
from pharmacrm.keyaccounts.models import Agreement, KeyAccount, Meeting, Proposal, Review, TrialOffer
from tests.concurrency import held_while

from .programme_fixtures import *  # noqa: F403
from .programme_fixtures import approve_plan, item_data

pytestmark = pytest.mark.django_db
EN = {"HTTP_ACCEPT_LANGUAGE": "en"}
ZH = {"HTTP_ACCEPT_LANGUAGE": "zh-hans"}


def _local(day: dt.date, hour: int, minute: int = 0) -> dt.datetime:
    return timezone.make_aware(dt.datetime.combine(day, dt.time(hour, minute)))


# --- 1. meetings before the listing -------------------------------------------------------------------------------


@pytest.fixture
def listed_ten_days_ago(users, xiehe, staffed):
    """协和, listed ten days ago at 10:00 (Beijing time) with its service team. → (account, the listing day)."""
    account = staffed(xiehe)
    listed = timezone.localdate() - dt.timedelta(days=10)
    KeyAccount.objects.filter(pk=account.pk).update(listed_at=_local(listed, 10))
    return account, listed  # the copy in `account` still says today: the service reads the stored date


def _meeting_form(held: dt.datetime, title: str = "季度服务沟通会") -> dict:
    return {"meeting-held_at": timezone.localtime(held).strftime("%Y-%m-%dT%H:%M"), "meeting-title": title,
            "meeting-minutes": "回顾上季度供货情况。"}  # fmt: skip


def test_the_meeting_form_refuses_a_date_before_the_listing_naming_it(listed_ten_days_ago, client_for):
    account, listed = listed_ten_days_ago
    kam = client_for("kam")
    url = reverse("keyaccounts:meeting-create", args=[account.pk])
    before = _local(listed - dt.timedelta(days=1), 15)
    page = kam.post(url, _meeting_form(before), **EN)
    assert page.status_code == 400
    assert page.context["meeting_form"].errors["held_at"] == [
        f"The meeting date cannot lie before {listed.isoformat()}, when the customer became a key account."
    ]
    chinese = kam.post(url, _meeting_form(before), **ZH).content.decode()
    assert f"会议日期不能早于 {listed.isoformat()}（该客户列为重点客户之日）。" in chinese
    assert not Meeting.objects.exists()
    # on the listing day itself, even in the morning before the decision was signed, it is the programme's meeting
    assert kam.post(url, _meeting_form(_local(listed, 8))).status_code == 302
    assert Meeting.objects.get().held_at == _local(listed, 8)


def test_the_api_refuses_a_meeting_before_the_listing(listed_ten_days_ago, api_client):
    account, listed = listed_ten_days_ago
    body = {"account": account.pk, "held_at": _local(listed - dt.timedelta(days=3), 9, 30).isoformat(),
            "title": "季度服务沟通会", "minutes": "回顾上季度供货情况。"}  # fmt: skip
    r = api_client("kam").post("/api/v1/keyaccounts/meetings/", body, format="json")
    assert r.status_code == 400
    assert r.json()["held_at"] == [
        f"The meeting date cannot lie before {listed.isoformat()}, when the customer became a key account."
    ]
    assert not Meeting.objects.exists()
    body["held_at"] = _local(listed + dt.timedelta(days=1), 9, 30).isoformat()
    assert api_client("kam").post("/api/v1/keyaccounts/meetings/", body, format="json").status_code == 201


def _pdf_text(data: bytes) -> str:
    return subprocess.run(["pdftotext", "-layout", "-", "-"], input=data, capture_output=True, check=True).stdout.decode()


def test_the_progress_report_counts_only_the_meetings_since_the_listing(listed_ten_days_ago, users, ruijin, listed,
                                                                       client_for):  # fmt: skip
    """Meetings recorded before the rule, dated before the listing, are not the programme's: the report counts those
    held from the listing day on (Beijing time: 07:00 on the listing day is the day before in UTC), per account."""
    account, listed_day = listed_ten_days_ago
    far = listed(ruijin)
    far_day = timezone.localdate() - dt.timedelta(days=40)
    KeyAccount.objects.filter(pk=far.pk).update(listed_at=_local(far_day, 16))
    held = {
        account: [listed_day - dt.timedelta(days=30), _local(listed_day - dt.timedelta(days=1), 23, 30),
                  _local(listed_day, 7), _local(listed_day + dt.timedelta(days=3), 14)],
        far: [_local(far_day - dt.timedelta(days=1), 10), _local(far_day + dt.timedelta(days=20), 10)],
    }  # fmt: skip
    for acc, moments in held.items():
        for n, moment in enumerate(moments):  # written as the old code let them through, past the service's check
            moment = moment if isinstance(moment, dt.datetime) else _local(moment, 10)
            Meeting.objects.create(account=acc, held_at=moment, title=f"会议 {n}", minutes="纪要")
    manager = client_for("manager")
    book = load_workbook(io.BytesIO(manager.get(reverse("keyaccounts:report-xlsx"), **EN).content))
    sheet = book.worksheets[0]
    header = [c.value for c in sheet[1]]
    assert header[5] == "Meetings held"
    counts = {row[0].value: row[5].value for row in sheet.iter_rows(min_row=2)}
    assert counts == {account.number: 2, far.number: 1}
    pdf = manager.get(reverse("keyaccounts:report-pdf") + f"?account={account.pk}", **EN)
    line = next(line for line in _pdf_text(pdf.content).splitlines() if account.number in line)
    assert line.split()[2:6] == ["0", "0", "0", "2"]  # items done, open, overdue (no plan yet); meetings held


# --- 2. issuing again a draft agreement of a replaced plan version -------------------------------------------------

REPLACED_EN = ("This agreement was generated from a plan version that has been replaced: generate the agreement again "
               "from the plan in force.")  # fmt: skip
REPLACED_ZH = "此协议依据的服务计划版本已被新版本取代，请根据现行计划重新生成协议。"


@pytest.fixture
def draft_of_a_replaced_plan(users, xiehe, with_plan):
    """A draft agreement generated from plan version 1; version 2 (another supply item) approved since. → (account,
    the agreement)."""
    account, first = with_plan(xiehe)
    kam, today = users["kam"], timezone.localdate()
    agreement = services.generate_agreement(kam, account, start_date=today, end_date=today + dt.timedelta(days=364))
    second = services.start_plan(kam, account)
    item = second.items.get(area=PlanArea.SUPPLY)
    services.save_item(kam, second, {**item_data(users, PlanArea.SUPPLY), "title": "冷链直送 24 小时到货"}, item=item,
                       version=item.version)  # fmt: skip
    approve_plan(users, second)
    first.refresh_from_db()
    assert first.status == PlanStatus.SUPERSEDED
    return account, Agreement.objects.get(pk=agreement.pk)


def _unchanged(agreement: Agreement) -> bool:
    now = Agreement.objects.get(pk=agreement.pk)
    reissued = AuditEntry.objects.filter(object_type="keyaccounts.agreement", object_id=str(agreement.pk),
                                         extra__reissued=True).exists()  # fmt: skip
    return (now.document, now.document_sha256, now.version) == (
        agreement.document, agreement.document_sha256, agreement.version) and not reissued


def test_the_page_does_not_offer_issuing_again_a_draft_of_a_replaced_plan_and_refuses_it(draft_of_a_replaced_plan,
                                                                                       users, client_for):  # fmt: skip
    account, agreement = draft_of_a_replaced_plan
    kam = client_for("kam")
    page = kam.get(reverse("keyaccounts:account", args=[account.pk]), **EN).content.decode()
    reissue = reverse("keyaccounts:agreement-reissue", args=[agreement.pk])
    assert reissue not in page  # no "Issue again"
    assert reverse("keyaccounts:agreement-signed", args=[agreement.pk]) not in page  # nor "Record the signing"
    assert ("Its plan version was replaced by a newer one: it can no longer be issued again or signed. Generate a new "
            "agreement from the plan in force.") in page  # fmt: skip
    # a page opened before version 2 was approved still sends it: refused, in the user's language
    answer = kam.post(reissue, {"version": agreement.version}, follow=True, **ZH)
    assert answer.redirect_chain and REPLACED_ZH in answer.content.decode()
    assert "重新出具协议" not in answer.content.decode()  # no "was issued again"
    assert _unchanged(agreement)
    # the agreement generated from version 2 is offered both
    fresh = services.generate_agreement(users["kam"], account, start_date=agreement.start_date,
                                        end_date=agreement.end_date)  # fmt: skip
    page = kam.get(reverse("keyaccounts:account", args=[account.pk]), **EN).content.decode()
    assert reverse("keyaccounts:agreement-reissue", args=[fresh.pk]) in page
    assert reverse("keyaccounts:agreement-signed", args=[fresh.pk]) in page


def test_the_api_refuses_issuing_again_a_draft_of_a_replaced_plan(draft_of_a_replaced_plan, api_client):
    _account, agreement = draft_of_a_replaced_plan
    url = f"/api/v1/keyaccounts/agreements/{agreement.pk}/reissue/"
    r = api_client("kam").post(url, {"version": agreement.version}, format="json")
    assert r.status_code == 400
    assert r.json() == {"non_field_errors": [REPLACED_EN]}
    assert _unchanged(agreement)


ROLES = ["admin", "manager", "kam", "agent", "expert", "support", "aftersales", "rep", "pv", "analyst", "auditor"]


@pytest.mark.parametrize("role", ROLES)
def test_the_api_issues_again_a_draft_of_the_plan_in_force_for_those_who_run_the_account(users, xiehe, with_plan,
                                                                                       api_client, role):  # fmt: skip
    account, _plan = with_plan(xiehe)
    today = timezone.localdate()
    agreement = services.generate_agreement(users["kam"], account, start_date=today,
                                            end_date=today + dt.timedelta(days=364))  # fmt: skip
    Institution.objects.filter(pk=account.institution_id).update(name="北京协和医院（东单院区）")  # renamed since
    url = f"/api/v1/keyaccounts/agreements/{agreement.pk}/reissue/"
    r = api_client(role).post(url, {"version": agreement.version}, format="json")
    if role not in ("admin", "manager", "kam"):  # as the page's "Issue again"
        assert r.status_code in (403, 404) and _unchanged(agreement)
        return
    assert r.status_code == 200, r.json()
    body = r.json()
    assert body["version"] == agreement.version + 1 and body["document_sha256"] != agreement.document_sha256
    assert AuditEntry.objects.filter(object_id=str(agreement.pk), extra__reissued=True).count() == 1
    # the version loaded before is stale now: 409, nothing issued
    stale = api_client(role).post(url, {"version": agreement.version}, format="json")
    assert stale.status_code == 409 and stale.json()["current_version"] == agreement.version + 1


# --- 3. a trial update that changes nothing -----------------------------------------------------------------------


@pytest.fixture
def trial(users, xiehe, staffed):
    from pharmacrm.servicedesk.models import Product

    account = staffed(xiehe)
    product = Product.objects.create(brand_name="新药", generic_name="新药片", dosage_form="片剂", strength="10mg")
    trial = services.offer_trial(users["kam"], account, product=product, notes="免费提供 10 盒，试用三个月")
    return services.update_trial(users["kam"], trial, status="accepted", notes="客户同意试用", version=trial.version)


def _trail(trial: TrialOffer) -> int:
    return AuditEntry.objects.filter(object_type="keyaccounts.trialoffer", object_id=str(trial.pk)).count()


def test_the_api_answers_a_trial_update_that_changes_nothing_with_the_record_as_it_is(trial, api_client):
    assert trial.version == 2
    entries = _trail(trial)
    url = f"/api/v1/keyaccounts/trials/{trial.pk}/status/"
    for body in ({"status": "accepted", "notes": "客户同意试用", "version": 2}, {"status": "accepted", "version": 2}):
        r = api_client("kam").post(url, body, format="json")
        assert r.status_code == 200, r.json()
        assert (r.json()["status"], r.json()["notes"], r.json()["version"]) == ("accepted", "客户同意试用", 2)
    assert TrialOffer.objects.get(pk=trial.pk).version == 2 and _trail(trial) == entries
    # a page loaded before those saves still saves a real change; a stale version is a conflict all the same
    r = api_client("expert").post(url, {"status": "completed", "version": 2}, format="json")
    assert r.status_code == 200 and r.json()["version"] == 3 and _trail(trial) == entries + 1
    assert api_client("kam").post(url, {"status": "completed", "version": 2}, format="json").status_code == 409


def test_the_page_saves_a_trial_update_that_changes_nothing_without_a_new_version(trial, client_for):
    entries = _trail(trial)
    url = reverse("keyaccounts:trial-update", args=[trial.account_id, trial.pk])
    form = {f"trial{trial.pk}-status": "accepted", f"trial{trial.pk}-notes": "客户同意试用",
            f"trial{trial.pk}-version": trial.version}  # the form as the page shows it, saved as it is
    answer = client_for("kam").post(url, form, follow=True, **EN)
    assert answer.redirect_chain and "The trial offer was updated." in answer.content.decode()
    stored = TrialOffer.objects.get(pk=trial.pk)
    assert (stored.status, stored.notes, stored.version) == ("accepted", "客户同意试用", 2) and _trail(trial) == entries
    # the expert, whose page was loaded before the kam's save, records the trial's end: not refused as stale
    done = client_for("expert").post(url, {**form, f"trial{trial.pk}-status": "completed"})
    assert done.status_code == 302 and TrialOffer.objects.get(pk=trial.pk).status == "completed"


# --- 4. an opinion revised as the proposal goes to leadership -------------------------------------------------------

NO_LONGER_IN_REVIEW = "This proposal is no longer in review."


def _kams_opinion(users, proposal) -> tuple[str, str]:
    review = Review.objects.get(proposal=proposal, reviewer=users["kam"])
    return review.opinion, review.comment


def _opinion_entries(proposal) -> int:
    return AuditEntry.objects.filter(object_type="keyaccounts.proposal", object_id=str(proposal.pk),
                                     changes__has_key="review").count()  # fmt: skip


def test_an_opinion_on_a_proposal_read_before_it_went_to_leadership_is_refused(users, xiehe, make_proposal,
                                                                             client_for, api_client):  # fmt: skip
    proposal = make_proposal(xiehe, submitted=False)  # marketing's and sales' (the kam's) opinions given
    read_before = Proposal.objects.get(pk=proposal.pk)  # the kam's page, still in review
    services.submit_for_decision(users["analyst"], proposal, version=proposal.version)
    entries = _opinion_entries(proposal)
    with translation.override("en"), pytest.raises(ValidationError) as refused:
        services.give_opinion(users["kam"], read_before, opinion="oppose", comment="供货风险大，改为反对")
    assert refused.value.messages == [NO_LONGER_IN_REVIEW]
    assert _kams_opinion(users, proposal) == ("support", "销售部支持") and _opinion_entries(proposal) == entries
    # the page and the API say so, in the user's language
    department = services.departments_of(users["kam"])[0]
    page = client_for("kam").post(reverse("keyaccounts:proposal-opinion", args=[proposal.pk]), {
        "review-department": department, "review-opinion": "oppose", "review-comment": "改为反对"}, **ZH)  # fmt: skip
    html = page.content.decode()
    assert page.status_code == 400 and "该提名已不在评审中。" in html
    assert 'id="give-opinion"' not in html  # the reason, and no form to send again
    api = api_client("kam").post(f"/api/v1/keyaccounts/proposals/{proposal.pk}/opinion/",
                                 {"opinion": "oppose", "comment": "改为反对"}, format="json")  # fmt: skip
    assert api.status_code == 400 and NO_LONGER_IN_REVIEW in str(api.json())
    assert _kams_opinion(users, proposal) == ("support", "销售部支持") and _opinion_entries(proposal) == entries


@pytest.mark.postgresql
@pytest.mark.django_db(transaction=True)
def test_an_opinion_revised_while_the_proposal_goes_to_leadership_is_refused(users, xiehe, make_proposal):
    """Marketing sends the proposal to leadership; in the same instant the kam, on the page read while it was in
    review, changes sales' opinion to "oppose". The change was saved into the proposal leadership was deciding (it
    waited only for the audit trail). Now it waits for the sending and is refused."""
    proposal = make_proposal(xiehe, submitted=False)
    read_before = Proposal.objects.get(pk=proposal.pk)
    refused: list[str] = []

    def revise():
        try:
            with translation.override("en"):
                services.give_opinion(users["kam"], read_before, opinion="oppose", comment="供货风险大，改为反对")
        except ValidationError as e:
            refused.extend(e.messages)

    held_while(lambda: services.submit_for_decision(users["analyst"], Proposal.objects.get(pk=proposal.pk),
                                                    version=proposal.version), revise)  # fmt: skip
    assert refused == [NO_LONGER_IN_REVIEW]
    assert Proposal.objects.get(pk=proposal.pk).status == "submitted"
    assert _kams_opinion(users, proposal) == ("support", "销售部支持")


@pytest.mark.postgresql
@pytest.mark.django_db(transaction=True)
def test_a_proposal_sent_while_an_opinion_is_saved_goes_with_that_opinion(users, xiehe, make_proposal):
    """The other order: the opinion is being saved when marketing sends the proposal. The sending waits for it (no
    deadlock between the proposal and the audit trail) and leadership gets the proposal with the revised opinion."""
    proposal = make_proposal(xiehe, submitted=False)
    read_before = Proposal.objects.get(pk=proposal.pk)
    errors: list[BaseException] = []

    def send():
        try:
            services.submit_for_decision(users["analyst"], read_before, version=read_before.version)
        except BaseException as e:  # noqa: BLE001 — the test asserts there was none
            errors.append(e)

    held_while(lambda: services.give_opinion(users["kam"], Proposal.objects.get(pk=proposal.pk), opinion="oppose",
                                             comment="供货风险大，改为反对"), send)  # fmt: skip
    assert errors == []
    assert Proposal.objects.get(pk=proposal.pk).status == "submitted"
    assert _kams_opinion(users, proposal) == ("oppose", "供货风险大，改为反对")


@pytest.mark.postgresql
@pytest.mark.django_db(transaction=True)
def test_a_draft_signed_while_its_plan_is_being_replaced_is_refused(users, xiehe, with_plan, tmp_path, settings):
    """Leadership approves plan version 2 while the kam records the signing of a draft generated from version 1 (the
    page read before). The signing checked the plan before it took any lock, and recorded a signed agreement of the
    version just replaced. Now it waits for the approval and is refused; the signed copy is not kept."""
    from django.core.files.uploadedfile import SimpleUploadedFile

    from .programme_fixtures import sign_code, tiny_pdf

    settings.VAR_DIR = tmp_path
    account, _first = with_plan(xiehe)
    kam, today = users["kam"], timezone.localdate()
    draft = services.generate_agreement(kam, account, start_date=today, end_date=today + dt.timedelta(days=364))
    second = services.start_plan(kam, account)
    services.submit_plan(kam, second)
    second.refresh_from_db()
    code = sign_code(users["manager"])
    files = set(services.agreements_dir().iterdir())
    refused: list[str] = []

    def sign():
        upload = SimpleUploadedFile("签署页.pdf", tiny_pdf(), content_type="application/pdf")
        try:
            with translation.override("en"):
                services.record_signed(kam, Agreement.objects.get(pk=draft.pk), signed_date=today, upload=upload)
        except ValidationError as e:
            refused.extend(e.messages)

    held_while(lambda: services.decide_plan(users["manager"], second, approve=True, otp_code=code), sign)
    assert refused == [REPLACED_EN]
    stored = Agreement.objects.get(pk=draft.pk)
    assert (stored.status, stored.signed_copy) == ("draft", "")
    assert set(services.agreements_dir().iterdir()) == files


@pytest.mark.postgresql
@pytest.mark.django_db(transaction=True)
def test_issuing_again_and_signing_the_same_draft_at_once_wait_for_each_other(users, xiehe, with_plan, tmp_path,
                                                                              settings, monkeypatch):  # fmt: skip
    """The kam issues a draft agreement again while a colleague records its signing. The issue held the plan and then
    wrote the agreement; the signing held the agreement and then asked for the plan: PostgreSQL broke the deadlock
    with a server error for one of them. Now both take the account, the agreement and the plan in that order."""
    import threading

    from django.core.files.uploadedfile import SimpleUploadedFile
    from django.db import connection

    from pharmacrm.keyaccounts import agreement_pdf
    from tests.concurrency import until_a_lock_is_awaited

    from .programme_fixtures import tiny_pdf

    settings.VAR_DIR = tmp_path
    account, _first = with_plan(xiehe)
    kam, today = users["kam"], timezone.localdate()
    draft = services.generate_agreement(kam, account, start_date=today, end_date=today + dt.timedelta(days=364))
    real, holding, errors = agreement_pdf.render, threading.Event(), {}

    def slow_render(agreement):  # the issue holds its locks while the document is made
        holding.set()
        until_a_lock_is_awaited()
        return real(agreement)

    monkeypatch.setattr(agreement_pdf, "render", slow_render)

    def side(name, work):
        def run():
            try:
                work()
            except BaseException as e:  # noqa: BLE001 — what each side met is the test's finding
                errors[name] = repr(e)
            finally:
                connection.close()

        return threading.Thread(target=run)

    upload = SimpleUploadedFile("签署页.pdf", tiny_pdf(), content_type="application/pdf")
    issue = side("issue", lambda: services.reissue_document(kam, Agreement.objects.get(pk=draft.pk)))
    sign = side("sign", lambda: services.record_signed(kam, Agreement.objects.get(pk=draft.pk), signed_date=today,
                                                        upload=upload))  # fmt: skip
    issue.start()
    assert holding.wait(30)
    sign.start()
    issue.join(60)
    sign.join(60)
    # the signing waited for the issue, then found the agreement changed since it read it (a new version): refused
    # as any stale form is, never a deadlock
    assert "issue" not in errors and "deadlock" not in errors.get("sign", "")
    assert Agreement.objects.get(pk=draft.pk).version > draft.version
