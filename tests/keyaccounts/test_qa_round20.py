"""Session 20 (key-account programme): a department is never proposed on its own (it is served through its
hospital's key account); team members are told what they deliver; signed copies are checked against their
fingerprint; the agreement archive finds customers as search does; a closed file's meeting actions stay as they
were."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse
from django.utils import translation

from pharmacrm.customers.models import Institution
from pharmacrm.keyaccounts import services
from pharmacrm.keyaccounts.models import KeyAccount, Proposal

from .programme_fixtures import *  # noqa: F403  (fixtures)

pytestmark = pytest.mark.django_db
EN = {"HTTP_ACCEPT_LANGUAGE": "en"}


# --- 1. a department is served through its hospital, never proposed on its own ------------------------------


def _department():
    return Institution.objects.get(name="心内科")


def test_a_department_cannot_be_proposed_as_a_key_account(users, xiehe):
    """The department of a hospital offered "Propose as key account" and the proposal went through: 心内科 could
    become a key account beside (or inside) 北京协和医院, its tier 'key account' and its tickets routed to either
    team."""
    with pytest.raises(ValidationError) as e, translation.override("en"):
        services.propose(users["analyst"], _department(), reason="心内科采购量大")
    assert "Propose 北京协和医院 instead" in " ".join(e.value.message_dict["institution"])
    assert not Proposal.objects.exists()


def test_the_api_refuses_a_department_under_institution(users, xiehe, api_client):
    answer = api_client("analyst").post("/api/v1/keyaccounts/proposals/",
                                        {"institution": _department().pk, "reason": "心内科采购量大"}, format="json")  # fmt: skip
    assert answer.status_code == 400
    assert "a department is served as part of its hospital" in answer.json()["institution"][0]


def test_a_departments_page_names_its_hospitals_key_account_and_offers_no_proposal(users, xiehe, listed, client_for):
    account = listed(xiehe)
    client = client_for("analyst")
    panel = client.get(reverse("keyaccounts:ka-panel", args=[_department().pk]), **EN).content.decode()
    assert "This customer is not a key account" not in panel
    assert "Propose as key account" not in panel
    assert account.number in panel and "its tickets go to that account's service team" in panel
    form = client.get(reverse("keyaccounts:proposal-create") + f"?institution={_department().pk}", **EN)
    page = form.content.decode()
    assert 'id="proposal-refusal"' in page and 'id="send-proposal"' not in page


def test_the_hospital_itself_is_still_offered(users, xiehe, client_for):
    panel = client_for("analyst").get(reverse("keyaccounts:ka-panel", args=[xiehe.pk]), **EN).content.decode()
    assert "Propose as key account" in panel


# --- 2. the team hears of its account, and each owner of what they deliver ----------------------------------


def _bell(user, kind):
    from django.utils import translation

    from pharmacrm.notify.models import Notification

    with translation.override("en"):
        return [(n.shown_title, n._shown("body")) for n in Notification.objects.filter(recipient=user, kind=kind)]


def test_a_new_member_is_told_which_account_they_serve_and_in_what_role(users, xiehe, listed):
    """Nobody told the product expert added to 北京协和医院's team: they found out from an overdue alert."""
    account = listed(xiehe)
    services.add_member(users["manager"], account, users["expert"], "expert")
    [(title, body)] = _bell(users["expert"], "keyaccounts.team")
    assert account.number in title and "北京协和医院" in title
    assert "Team role: Product expert" in body


def test_whoever_adds_themselves_is_not_told(users, xiehe, listed, manager2):
    account = listed(xiehe)
    services.add_member(manager2, account, manager2, "pm")
    assert _bell(manager2, "keyaccounts.team") == []


def test_each_item_owner_hears_of_their_items_when_the_plan_comes_into_force(users, xiehe, staffed):
    """On approval only the project manager and the plan's author were told: technical support learned of its
    deadline from the overdue alert."""
    import datetime as dt

    from django.utils import timezone

    from .programme_fixtures import AREAS, approve_plan, item_data

    account = staffed(xiehe)
    kam = users["kam"]
    plan = services.start_plan(kam, account, goals="保障供应")
    owners = {AREAS[0]: "kam", AREAS[1]: "support", AREAS[2]: "support", AREAS[3]: "expert"}
    for n, area in enumerate(AREAS):
        services.save_item(kam, plan, item_data(users, area, timezone.localdate() + dt.timedelta(days=20 + n),
                                                owner=owners[area]))  # fmt: skip
    approve_plan(users, plan)
    [(title, body)] = _bell(users["support"], "keyaccounts.plan")
    assert title.endswith("you deliver 2 service items") and account.number in title
    assert "服务项目 tech_support" in body and "服务项目 after_sales" in body
    [(title, _body)] = _bell(users["expert"], "keyaccounts.plan")
    assert title.endswith("you deliver 1 service item")
    assert len(_bell(kam, "keyaccounts.plan")) == 1  # the project manager: the approval itself, once
    assert _bell(users["aftersales"], "keyaccounts.plan") == []  # owns nothing


# --- 3. the signed copy is the one that was uploaded ---------------------------------------------------------


@pytest.fixture
def signed(users, xiehe, with_plan):
    """An agreement of 北京协和医院 signed today, with a PDF scan as its signed copy."""
    import datetime as dt

    from django.core.files.uploadedfile import SimpleUploadedFile
    from django.utils import timezone

    from .programme_fixtures import tiny_pdf

    account, _plan = with_plan(xiehe)
    today = timezone.localdate()
    agreement = services.generate_agreement(users["kam"], account, start_date=today,
                                            end_date=today + dt.timedelta(days=365))  # fmt: skip
    upload = SimpleUploadedFile("协和签署页.pdf", tiny_pdf(), content_type="application/pdf")
    return services.record_signed(users["kam"], agreement, signed_date=today, upload=upload)


def _kept(agreement):
    return services.agreements_dir() / agreement.signed_copy


def test_an_unchanged_signed_copy_is_downloaded_as_uploaded(signed, client_for, api_client):
    page = client_for("kam").get(reverse("keyaccounts:agreement-signed-copy", args=[signed.pk]), **EN)
    content = b"".join(page.streaming_content)
    assert page.status_code == 200 and content == _kept(signed).read_bytes()
    assert content.startswith(b"%PDF")
    assert "filename*=UTF-8''%E5%8D%8F" in page["Content-Disposition"]
    api = api_client("kam").get(f"/api/v1/keyaccounts/agreements/{signed.pk}/signed-copy/")
    assert api.status_code == 200 and b"".join(api.streaming_content) == content


def test_a_signed_copy_changed_on_disk_is_reported_not_handed_out(signed, client_for, api_client):
    """The scan of the signed contract was replaced on the server (a restore gone wrong, a hand edit): the page and
    the API handed the other file out as the signed agreement, although its SHA-256 was recorded at upload."""
    _kept(signed).write_bytes(b"%PDF-1.4 another document")
    client = client_for("kam")
    page = client.get(reverse("keyaccounts:agreement-signed-copy", args=[signed.pk]), **EN)
    assert page.status_code == 302 and page["Location"].endswith("#agreements")
    shown = client.get(page["Location"], **EN).content.decode()
    assert "does not match its fingerprint" in shown and "Restore it from a backup" in shown
    api = api_client("kam").get(f"/api/v1/keyaccounts/agreements/{signed.pk}/signed-copy/")
    assert api.status_code == 409 and "does not match its fingerprint" in api.json()["detail"]


def test_a_missing_signed_copy_says_to_restore_it_where_the_download_started(signed, client_for, api_client):
    """It answered a bare 'Not found' page."""
    _kept(signed).unlink()
    client = client_for("kam")
    archive = reverse("keyaccounts:agreement-signed-copy", args=[signed.pk]) + "?from=archive&q=协和"
    page = client.get(archive, **EN)
    assert page.status_code == 302 and page["Location"].startswith(reverse("keyaccounts:agreements") + "?q=")
    assert "is missing from the storage" in client.get(page["Location"], **EN).content.decode()
    api = api_client("kam").get(f"/api/v1/keyaccounts/agreements/{signed.pk}/signed-copy/")
    assert api.status_code == 409 and "missing from the storage" in api.json()["detail"]


# --- 4. the agreement archive finds a customer as search does -------------------------------------------------


@pytest.mark.parametrize("typed", ["北京協和醫院", "北京 协和", "ＡＧ－", "ka-20", "12100000400000000"])
def test_the_archive_finds_the_agreement_however_the_customer_is_typed(signed, xiehe, client_for, typed):
    """Typed in Traditional characters (a zh-Hant reader), with a space, in full width from a Chinese input method,
    by the key-account number, or by the credit code, the archive answered 'no agreements' although search finds
    the customer."""
    if typed.isdigit():
        typed = xiehe.credit_code
    page = client_for("manager").get(reverse("keyaccounts:agreements"), {"q": typed}, **EN).content.decode()
    assert signed.number in page


def test_the_archive_still_leaves_out_other_customers(signed, client_for):
    page = client_for("manager").get(reverse("keyaccounts:agreements"), {"q": "瑞金医院"}, **EN).content.decode()
    assert signed.number not in page


# --- 5. summaries show the agreement in force, not a renewal waiting to be signed ----------------------------


def test_a_renewal_generated_ahead_does_not_hide_the_agreement_in_force(users, signed, xiehe, client_for):
    """Two months before the end the KAM generates next year's agreement to send it round: from then on the
    key-account list, the customer's block and the leadership report showed only 'Generated, not signed', as
    if the customer had no agreement."""
    import datetime as dt
    import io

    import openpyxl

    start = signed.end_date + dt.timedelta(days=1)
    renewal = services.generate_agreement(users["kam"], signed.account, start_date=start,
                                          end_date=start + dt.timedelta(days=364))  # fmt: skip
    client = client_for("manager")
    for url in (reverse("keyaccounts:home"), reverse("keyaccounts:ka-panel", args=[xiehe.pk])):
        page = client.get(url, **EN).content.decode()
        assert signed.number in page and renewal.number not in page, url
    sheet = openpyxl.load_workbook(io.BytesIO(client.get(reverse("keyaccounts:report-xlsx"), **EN).content)).active
    [row] = [r for r in sheet.iter_rows(values_only=True) if r[0] == signed.account.number]
    assert row[8:10] == (signed.number, "Signed")


def test_without_an_agreement_in_force_the_latest_is_shown(users, xiehe, with_plan, client_for):
    import datetime as dt

    from django.utils import timezone

    account, _plan = with_plan(xiehe)
    today = timezone.localdate()
    draft = services.generate_agreement(users["kam"], account, start_date=today, end_date=today + dt.timedelta(days=365))
    page = client_for("manager").get(reverse("keyaccounts:home"), **EN).content.decode()
    assert draft.number in page and "Generated, not signed" in page


# --- 6. a de-listed account's meeting actions are kept as they were ------------------------------------------


def test_a_delisted_accounts_meeting_actions_cannot_be_ticked_off(users, xiehe, staffed, make_proposal, manager2,
                                                                 api_client, client_for):
    """The file of a de-listed customer is closed 'as it was', and its page offers no button — but the API (and
    a page left open) still ticked its meeting actions done and open again."""
    import datetime as dt

    from django.utils import timezone

    from pharmacrm.keyaccounts.models import MeetingAction

    from .test_lifecycle_fixes import delist

    account = staffed(xiehe)
    # listed the day before (a meeting is never dated before the listing day; an hour ago may be yesterday)
    KeyAccount.objects.filter(pk=account.pk).update(listed_at=timezone.now() - dt.timedelta(days=1))
    meeting = services.record_meeting(users["kam"], account, {
        "held_at": timezone.now() - dt.timedelta(hours=1), "title": "季度沟通会", "minutes": "回顾供货"},
        [{"title": "补发资料", "owner": users["expert"], "due_date": timezone.localdate() + dt.timedelta(days=7)}])  # fmt: skip
    action = meeting.actions.get()
    delist(make_proposal, manager2, xiehe)

    answer = api_client("expert").post(f"/api/v1/keyaccounts/meeting-actions/{action.pk}/done/", {"done": True},
                                       format="json")  # fmt: skip
    assert answer.status_code == 400 and "de-listed" in str(answer.json())
    kam = client_for("kam")
    page = kam.post(reverse("keyaccounts:action-toggle", args=[account.pk, action.pk]), {"done": "1"}, **EN)
    assert page.status_code == 302
    assert "This key account has been de-listed." in kam.get(page["Location"], **EN).content.decode()
    assert MeetingAction.objects.get(pk=action.pk).done_at is None


# --- 7. a quarter's evaluation covers an account de-listed during it ------------------------------------------


def test_an_account_delisted_during_the_quarter_is_evaluated_and_counts_on_the_scorecards(
    users, xiehe, staffed, make_proposal, manager2
):
    """De-listed on the quarter's 45th day, the account got no evaluation of that quarter (the nightly run took
    active accounts only): its team's scorecards showed the quarter without the customer they served most of it."""
    import datetime as dt

    from django.utils import timezone

    from pharmacrm.keyaccounts.models import AccountReview, KeyAccount, TeamTenure

    from .test_lifecycle_fixes import delist

    account = staffed(xiehe)
    delist(make_proposal, manager2, xiehe)
    today = timezone.localdate()
    period = services.previous_quarter(today)
    start, _end = services.period_bounds(period)
    day = start + dt.timedelta(days=45)
    gone = timezone.make_aware(dt.datetime.combine(day, dt.time(10)))
    KeyAccount.objects.filter(pk=account.pk).update(delisted_at=gone, listed_at=gone - dt.timedelta(days=700))
    TeamTenure.objects.filter(account=account).update(end=day)

    year = str(today.year - 1)
    assert services.scheduled_reviews(today) == 2  # the quarter, and last year (listed 700 days before)
    assert set(AccountReview.objects.filter(account=account).values_list("period", flat=True)) == {period, year}
    review = AccountReview.objects.get(account=account, period=period)
    [card] = [c for c in services.scorecards(period) if c["user"] == users["kam"]]
    assert card["average_score"] == review.score

    KeyAccount.objects.filter(pk=account.pk).update(delisted_at=gone - dt.timedelta(days=90))  # before the quarter
    AccountReview.objects.all().delete()
    services.scheduled_reviews(today)
    assert not AccountReview.objects.filter(account=account, period=period).exists()


# --- 8. the API removes an item from a draft, as the page does ------------------------------------------------


def test_the_api_removes_an_item_from_a_draft_and_leaves_the_plan_in_force_alone(users, xiehe, with_plan, api_client):
    """An API client could add and change a draft's items but not remove one: a mistaken item stayed in the draft
    (DELETE answered 405)."""
    from pharmacrm.keyaccounts.models import PlanItem

    from .programme_fixtures import AREAS, item_data

    account, plan = with_plan(xiehe)
    draft = services.start_plan(users["kam"], account)
    extra = services.save_item(users["kam"], draft, {**item_data(users, AREAS[0]), "title": "误加的项目"})
    kam = api_client("kam")
    assert api_client("agent").delete(f"/api/v1/keyaccounts/plan-items/{extra.pk}/").status_code == 403
    assert kam.delete(f"/api/v1/keyaccounts/plan-items/{extra.pk}/").status_code == 204
    assert not PlanItem.objects.filter(pk=extra.pk).exists()
    in_force = plan.items.first()
    answer = kam.delete(f"/api/v1/keyaccounts/plan-items/{in_force.pk}/")
    assert answer.status_code == 400 and "Only a draft" in str(answer.json())
    assert PlanItem.objects.filter(pk=in_force.pk).exists()


# --- 9. every meeting's minutes stay readable on the page ----------------------------------------------------


def test_meetings_older_than_the_latest_twenty_can_be_shown(users, xiehe, staffed, client_for):
    """Two years of monthly meetings: the page showed the latest 20 and no way to the earlier minutes."""
    import datetime as dt

    from django.utils import timezone

    account = staffed(xiehe)
    now = timezone.now()
    # listed before the first of them (a meeting is never dated before the listing)
    KeyAccount.objects.filter(pk=account.pk).update(listed_at=now - dt.timedelta(days=30 * 22 + 1))
    for n in range(22):
        services.record_meeting(users["kam"], account, {"held_at": now - dt.timedelta(days=30 * n + 1),
                                                        "title": f"第{22 - n}次月度沟通会", "minutes": "纪要"})  # fmt: skip
    client = client_for("kam")
    url = reverse("keyaccounts:account", args=[account.pk])
    page = client.get(url, **EN).content.decode()
    assert "第22次月度沟通会" in page and "第1次月度沟通会" not in page
    assert "Show all 22 meetings" in page
    everything = client.get(url + "?meetings=all", **EN).content.decode()
    assert "第1次月度沟通会" in everything and "第2次月度沟通会" in everything and "Show all" not in everything


# --- 10. an agreement is not recorded as signed after its term ---------------------------------------------------


def test_a_signing_date_after_the_agreements_end_is_refused(users, xiehe, with_plan):
    """A term entered as 2026-01-01 – 2026-03-31 by mistake, signed in May: recorded as signed, then expired by the
    worker the same night, with its renewal reminder sent at once."""
    import datetime as dt

    from django.core.files.uploadedfile import SimpleUploadedFile
    from django.utils import timezone

    from pharmacrm.keyaccounts.models import Agreement

    from .programme_fixtures import tiny_pdf

    account, _plan = with_plan(xiehe)
    today = timezone.localdate()
    agreement = services.generate_agreement(users["kam"], account, start_date=today - dt.timedelta(days=100),
                                            end_date=today - dt.timedelta(days=10), renewal_notice_days=30)  # fmt: skip
    upload = SimpleUploadedFile("签署页.pdf", tiny_pdf(), content_type="application/pdf")
    with pytest.raises(ValidationError) as e, translation.override("en"):
        services.record_signed(users["kam"], agreement, signed_date=today, upload=upload)
    assert "cannot lie after the agreement's end" in e.value.message_dict["signed_date"][0]
    assert Agreement.objects.get(pk=agreement.pk).status == "draft"


def test_the_quarter_of_a_delisting_counts_only_the_items_that_fell_due_while_the_customer_was_served(
    users, xiehe, with_plan, make_proposal, manager2
):
    """De-listed on the quarter's 45th day, the account's evaluation counted the items due after it as missed:
    its file was closed, nobody could deliver them, and its score (and the team's cards) fell for them."""
    import datetime as dt

    from django.utils import timezone

    from pharmacrm.keyaccounts.models import KeyAccount, PlanItem

    from .test_lifecycle_fixes import delist

    account, plan = with_plan(xiehe)
    delist(make_proposal, manager2, xiehe)
    period = services.previous_quarter(timezone.localdate())
    start, _end = services.period_bounds(period)
    gone = timezone.make_aware(dt.datetime.combine(start + dt.timedelta(days=45), dt.time(10)))
    KeyAccount.objects.filter(pk=account.pk).update(delisted_at=gone, listed_at=gone - dt.timedelta(days=700))
    early, late = plan.items.order_by("id")[:2], plan.items.order_by("id")[2:]
    # the first two missed while the customer was still served
    PlanItem.objects.filter(pk__in=[i.pk for i in early]).update(deadline=start + dt.timedelta(days=10))
    PlanItem.objects.filter(pk__in=[i.pk for i in late]).update(deadline=start + dt.timedelta(days=60))

    review = services.review_account(KeyAccount.objects.get(pk=account.pk), period)

    assert (review.plan_items_due, review.plan_items_on_time) == (2, 0)
    [card] = [c for c in services.scorecards(period) if c["user"] == users["kam"]]
    assert (card["items_due"], card["items_on_time"]) == (2, 0)  # the same count as the evaluation's
