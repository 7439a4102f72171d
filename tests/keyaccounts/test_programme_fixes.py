"""QA defects of the key-account programme (issue 5, items 5–8): dates of plan items, meeting actions and trial
offers are checked; a meeting action without a title is a field error, not lost; a meeting or trial sent twice is
recorded once; team members see their own scorecard for a finished quarter; the progress report's headings wrap
at word boundaries and it lists each account's items overdue or due soon."""

from __future__ import annotations

import datetime as dt
import io
import subprocess

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse
from django.utils import timezone
from openpyxl import load_workbook

from pharmacrm.core.models import AuditEntry
from pharmacrm.keyaccounts import services
from pharmacrm.keyaccounts.choices import ItemStatus, PlanArea
from pharmacrm.keyaccounts.models import KeyAccount, Meeting, MeetingAction, PlanItem, TrialOffer
from pharmacrm.notify.models import Notification

from .programme_fixtures import *  # noqa: F403
from .programme_fixtures import item_data

pytestmark = pytest.mark.django_db
EN = {"HTTP_ACCEPT_LANGUAGE": "en"}


def _today() -> dt.date:
    return timezone.localdate()


# --- 1. dates ----------------------------------------------------------------------------------------------------


def test_a_plan_item_deadline_in_the_past_or_outside_the_plans_validity_is_refused(users, staffed, xiehe,
                                                                                  client_for):  # fmt: skip
    account = staffed(xiehe)
    today = _today()
    start, end = today + dt.timedelta(days=10), today + dt.timedelta(days=200)
    plan = services.start_plan(users["kam"], account, valid_from=start, valid_to=end)
    for deadline in (dt.date(2020, 1, 1), today - dt.timedelta(days=1), end + dt.timedelta(days=1),
                     start - dt.timedelta(days=1)):  # fmt: skip
        with pytest.raises(ValidationError) as e:
            services.save_item(users["kam"], plan, item_data(users, PlanArea.SUPPLY, deadline))
        assert "deadline" in e.value.error_dict, deadline
    assert not plan.items.exists()
    # the page says why, under the field, and keeps what was typed
    page = client_for("kam").post(reverse("keyaccounts:item-add", args=[account.pk]), {
        "item-area": PlanArea.SUPPLY, "item-title": "紧急订单 48 小时送达", "item-standard": "48 小时内送达",
        "item-owner": users["kam"].pk, "item-deadline": (end + dt.timedelta(days=400)).isoformat()}, **EN)  # fmt: skip
    assert page.status_code == 400
    html = page.content.decode()
    assert f"within the plan&#x27;s validity, {start.isoformat()} to {end.isoformat()}" in html
    page = client_for("kam").post(reverse("keyaccounts:item-add", args=[account.pk]), {
        "item-area": PlanArea.SUPPLY, "item-title": "紧急订单 48 小时送达", "item-standard": "48 小时内送达",
        "item-owner": users["kam"].pk, "item-deadline": "2020-01-01"}, **EN)  # fmt: skip
    assert page.status_code == 400 and "The deadline cannot lie in the past." in page.content.decode()
    assert not plan.items.exists()
    item = services.save_item(users["kam"], plan, item_data(users, PlanArea.SUPPLY, start + dt.timedelta(days=5)))
    assert item.deadline == start + dt.timedelta(days=5)


def test_a_plan_without_validity_still_refuses_a_past_deadline(users, staffed, xiehe):
    account = staffed(xiehe)
    plan = services.start_plan(users["kam"], account)
    with pytest.raises(ValidationError) as e:
        services.save_item(users["kam"], plan, item_data(users, PlanArea.SUPPLY, _today() - dt.timedelta(days=3)))
    assert "deadline" in e.value.error_dict
    assert services.save_item(users["kam"], plan, item_data(users, PlanArea.SUPPLY, _today())).deadline == _today()


def test_an_item_carried_over_with_a_passed_deadline_can_still_be_edited(users, xiehe, with_plan):
    account, first = with_plan(xiehe)
    passed = _today() - dt.timedelta(days=20)
    first.items.filter(area=PlanArea.SUPPLY).update(deadline=passed)  # it was due three weeks ago
    draft = services.start_plan(users["kam"], account)
    item = draft.items.get(area=PlanArea.SUPPLY)
    data = {**item_data(users, PlanArea.SUPPLY, passed), "title": "核心品种月度备货（更名）"}
    services.save_item(users["kam"], draft, data, item=item, version=item.version)  # the same deadline: kept
    item.refresh_from_db()
    assert (item.title, item.deadline) == ("核心品种月度备货（更名）", passed)
    with pytest.raises(ValidationError) as e:  # moved to another passed day: refused
        services.save_item(users["kam"], draft, {**data, "deadline": passed + dt.timedelta(days=1)}, item=item,
                           version=item.version)  # fmt: skip
    assert "deadline" in e.value.error_dict


def _meeting_post(held: dt.datetime, **rows) -> dict:
    data = {"meeting-held_at": held.strftime("%Y-%m-%dT%H:%M"), "meeting-title": "季度服务沟通会",
            "meeting-minutes": "讨论第四季度供货与培训安排。"}  # fmt: skip
    data.update({f"meeting-{k}": v for k, v in rows.items()})
    return data


def test_a_meeting_action_due_before_the_meeting_is_a_field_error(users, staffed, xiehe, client_for):
    account = staffed(xiehe)
    held = timezone.localtime() - dt.timedelta(days=10)
    # listed before the meeting (a meeting is never dated before the listing)
    KeyAccount.objects.filter(pk=account.pk).update(listed_at=held - dt.timedelta(days=30))
    page = client_for("kam").post(reverse("keyaccounts:meeting-create", args=[account.pk]), _meeting_post(
        held, action_1_title="补发到货差异", action_1_owner=users["kam"].pk,
        action_1_due=(held.date() - dt.timedelta(days=1)).isoformat()), **EN)  # fmt: skip
    assert page.status_code == 400
    form = page.context["meeting_form"]
    assert form.errors["action_1_due"] == [
        f"An action is due on or after the day of the meeting ({held.date().isoformat()})."
    ]
    assert not Meeting.objects.exists() and not Notification.objects.filter(kind="keyaccounts.action").exists()
    # due on the day of the meeting is fine
    ok = client_for("kam").post(reverse("keyaccounts:meeting-create", args=[account.pk]), _meeting_post(
        held, action_1_title="补发到货差异", action_1_owner=users["kam"].pk, action_1_due=held.date().isoformat()))
    assert ok.status_code == 302 and MeetingAction.objects.get().due_date == held.date()


def test_a_trial_offered_in_the_future_or_before_the_listing_is_refused(users, staffed, xiehe, client_for):
    from pharmacrm.servicedesk.models import Product

    account = staffed(xiehe)
    listed = _today() - dt.timedelta(days=90)
    KeyAccount.objects.filter(pk=account.pk).update(
        listed_at=timezone.make_aware(dt.datetime.combine(listed, dt.time(10)))
    )  # the copy in `account` still says today: the service reads the stored date
    product = Product.objects.create(brand_name="新药", generic_name="新药片", dosage_form="片剂", strength="10mg")
    kam = client_for("kam")
    url = reverse("keyaccounts:trial-create", args=[account.pk])
    for day, words in ((dt.date(2030, 1, 1), "cannot lie in the future"),
                       (dt.date(2001, 1, 1), f"cannot lie before {listed.isoformat()}, when the customer became")):  # fmt: skip
        page = kam.post(url, {"trial-product": product.pk, "trial-offered_on": day.isoformat()}, **EN)
        assert page.status_code == 400
        assert words in " ".join(page.context["trial_form"].errors["offered_on"])
    assert not TrialOffer.objects.exists()
    with pytest.raises(ValidationError) as e:
        services.offer_trial(users["kam"], account, product=product, offered_on=_today() + dt.timedelta(days=1))
    assert "offered_on" in e.value.error_dict
    assert kam.post(url, {"trial-product": product.pk, "trial-offered_on": listed.isoformat()}).status_code == 302
    assert TrialOffer.objects.get().offered_on == listed


# --- 2. an action row without a title ---------------------------------------------------------------------------


def test_an_action_row_without_a_title_is_an_error_on_that_row_and_nothing_is_saved(users, staffed, xiehe, client_for):
    account = staffed(xiehe)
    held = timezone.localtime() - dt.timedelta(hours=2)
    page = client_for("kam").post(reverse("keyaccounts:meeting-create", args=[account.pk]), _meeting_post(
        held, action_1_title="整理需求", action_1_owner=users["expert"].pk,
        action_1_due=(held.date() + dt.timedelta(days=7)).isoformat(),
        action_2_title="", action_2_owner=users["support"].pk,
        action_2_due=(held.date() + dt.timedelta(days=9)).isoformat(),
        action_3_due=(held.date() + dt.timedelta(days=3)).isoformat()), **EN)  # fmt: skip
    assert page.status_code == 400
    errors = page.context["meeting_form"].errors
    assert errors["action_2_title"] == ["Give the action a title, or clear its owner and due date."]
    assert "action_3_title" in errors and "action_3_owner" in errors and "action_1_title" not in errors
    html = page.content.decode()
    assert "Give the action a title, or clear its owner and due date." in html
    assert "The meeting was recorded." not in html
    assert not Meeting.objects.exists() and not MeetingAction.objects.exists()
    assert not Notification.objects.filter(kind="keyaccounts.action").exists()


# --- 3. sent twice -----------------------------------------------------------------------------------------------


def test_a_meeting_sent_twice_is_recorded_once_and_told_once(users, staffed, xiehe, client_for):
    account = staffed(xiehe)
    held = timezone.localtime() - dt.timedelta(hours=3)
    # listed the day before (a meeting is never dated before the listing day; three hours ago may be yesterday)
    KeyAccount.objects.filter(pk=account.pk).update(listed_at=held - dt.timedelta(days=1))
    data = _meeting_post(held, action_1_title="整理需求", action_1_owner=users["expert"].pk,
                         action_1_due=(held.date() + dt.timedelta(days=7)).isoformat())  # fmt: skip
    kam = client_for("kam")
    url = reverse("keyaccounts:meeting-create", args=[account.pk])
    assert kam.post(url, data).status_code == 302
    for _ in range(2):
        again = kam.post(url, data, **EN)
        assert again.status_code == 409
        html = again.content.decode()
        meeting = Meeting.objects.get()
        assert "This meeting is recorded already" in html and "Nothing new was saved." in html
        assert f'href="#meeting-{meeting.pk}"' in html and f'id="meeting-{meeting.pk}"' in html
    assert Meeting.objects.count() == 1 and MeetingAction.objects.count() == 1
    assert Notification.objects.filter(kind="keyaccounts.action", recipient=users["expert"]).count() == 1
    assert AuditEntry.objects.filter(action="create", object_type__icontains="meeting").count() == 1
    # another title, or another start time, is another meeting
    assert kam.post(url, {**data, "meeting-title": "专题会"}).status_code == 302
    later = {**data, "meeting-held_at": (held + dt.timedelta(minutes=30)).strftime("%Y-%m-%dT%H:%M")}
    assert kam.post(url, later).status_code == 302
    assert Meeting.objects.count() == 3


def test_the_service_refuses_the_same_meeting_within_the_same_minute(users, staffed, xiehe):
    account = staffed(xiehe)
    held = timezone.now().replace(second=5)
    services.record_meeting(users["kam"], account, {"held_at": held, "title": "例会", "minutes": "纪要"})
    with pytest.raises(services.AlreadyRecorded) as e:
        services.record_meeting(users["kam"], account, {"held_at": held.replace(second=40), "title": "例会",
                                                        "minutes": "另一份纪要"})  # fmt: skip
    assert e.value.existing == Meeting.objects.get()


def test_a_trial_sent_twice_is_recorded_once(users, staffed, xiehe, client_for):
    from pharmacrm.servicedesk.models import Product

    account = staffed(xiehe)
    product = Product.objects.create(brand_name="新药", generic_name="新药片", dosage_form="片剂", strength="10mg")
    kam = client_for("kam")
    url = reverse("keyaccounts:trial-create", args=[account.pk])
    data = {"trial-product": product.pk, "trial-offered_on": _today().isoformat(), "trial-notes": "试用 20 支"}
    assert kam.post(url, data).status_code == 302
    again = kam.post(url, data, **EN)
    assert again.status_code == 409
    trial = TrialOffer.objects.get()
    html = again.content.decode()
    assert "This trial offer is recorded already" in html and f'href="#trial-{trial.pk}"' in html
    # no date means today: the same offer
    assert kam.post(url, {"trial-product": product.pk}).status_code == 409
    assert TrialOffer.objects.count() == 1


def test_the_forms_that_record_disable_their_button_after_the_first_click(users, staffed, xiehe, client_for):
    from pathlib import Path

    from django.conf import settings

    account = staffed(xiehe)
    html = client_for("kam").get(reverse("keyaccounts:account", args=[account.pk])).content.decode()
    for action in ("meeting-create", "trial-create"):
        url = reverse(f"keyaccounts:{action}", args=[account.pk])
        assert f'action="{url}" novalidate data-submit-once>' in html
    script = (Path(settings.BASE_DIR) / "pharmacrm" / "static" / "js" / "app.js").read_text()
    assert "form[data-submit-once]" in script


# --- 4. scorecards -----------------------------------------------------------------------------------------------


def _listed_a_year_ago(account) -> KeyAccount:
    KeyAccount.objects.filter(pk=account.pk).update(listed_at=timezone.now() - dt.timedelta(days=365))
    return KeyAccount.objects.get(pk=account.pk)


def _quarter_before(period: str) -> str:
    year, q = int(period[:4]), int(period[5])
    return f"{year - 1}Q4" if q == 1 else f"{year}Q{q - 1}"


@pytest.mark.parametrize("role", ["kam", "expert", "support", "aftersales"])
def test_a_team_member_sees_their_scorecard_of_the_last_finished_quarter(users, xiehe, with_plan, client_for, role):
    account, _plan = with_plan(xiehe)
    account = _listed_a_year_ago(account)
    finished = services.previous_quarter(_today())
    review = services.review_account(account, finished)
    c = client_for(role)
    page = c.get(reverse("keyaccounts:my"), **EN)
    assert page.status_code == 200 and page.context["period"] == finished
    html = page.content.decode()
    assert f"Scorecard {finished}" in html and 'id="period-filter"' in html
    assert page.context["card"]["average_score"] == review.score
    assert f"<dd>{review.score}</dd>" in html
    # another finished quarter, chosen with the picker
    earlier = _quarter_before(finished)
    page = c.get(reverse("keyaccounts:my"), {"period": earlier.lower()}, **EN)
    assert page.context["period"] == earlier and page.context["card"]["average_score"] is None
    # the list of everybody's scorecards stays with leadership
    assert c.get(reverse("keyaccounts:scorecards")).status_code == 403


@pytest.mark.parametrize("role", ["agent", "rep"])
def test_a_user_outside_any_team_sees_no_scorecard_but_the_page_works(client_for, role):
    page = client_for(role).get(reverse("keyaccounts:my"), {"period": "2025Q4"}, **EN)
    assert page.status_code == 200 and page.context["card"] is None
    assert "No scorecard for this period." in page.content.decode()


def test_a_bad_period_on_my_page_is_a_message_as_on_the_scorecards_page(client_for):
    for url in (reverse("keyaccounts:my"), reverse("keyaccounts:scorecards")):
        page = client_for("manager").get(url, {"period": "2026Q7"}, **EN)
        assert page.status_code == 200
        assert "Write the period as 2026Q3 (a quarter) or 2026 (a year)." in page.content.decode()


def test_the_scorecards_page_defaults_to_the_last_finished_quarter(users, xiehe, with_plan, client_for):
    account, _plan = with_plan(xiehe)
    account = _listed_a_year_ago(account)
    finished = services.previous_quarter(_today())
    review = services.review_account(account, finished)
    page = client_for("manager").get(reverse("keyaccounts:scorecards"))
    assert page.context["period"] == finished
    kam = next(c for c in page.context["cards"] if c["user"] == users["kam"])
    assert kam["average_score"] == review.score


# --- 5. the progress report --------------------------------------------------------------------------------------


# long enough to wrap in its column of the PDF
LONG_TITLE = "核心品种月度备货保障（安心宁、护肝康）：冷链全程温度记录可追溯，每批随货附温度报告，温度偏差当日通报，紧急订单四十八小时内送达"


@pytest.fixture
def reported(users, xiehe, with_plan):
    """Xiehe's plan in force: supply overdue by 5 days, tech support due in 10, after-sales done though overdue,
    training due in 60 days (not listed)."""
    account, plan = with_plan(xiehe)
    today = _today()
    items = {i.area: i for i in plan.items.all()}
    PlanItem.objects.filter(pk=items[PlanArea.SUPPLY].pk).update(
        deadline=today - dt.timedelta(days=5), title=LONG_TITLE,
        status=ItemStatus.IN_PROGRESS, progress=40,
    )  # fmt: skip
    PlanItem.objects.filter(pk=items[PlanArea.TECH_SUPPORT].pk).update(deadline=today + dt.timedelta(days=10),
                                                                       title="Dose adjustment support")  # fmt: skip
    PlanItem.objects.filter(pk=items[PlanArea.AFTER_SALES].pk).update(deadline=today - dt.timedelta(days=2),
                                                                      status=ItemStatus.DONE, progress=100)  # fmt: skip
    PlanItem.objects.filter(pk=items[PlanArea.TRAINING].pk).update(deadline=today + dt.timedelta(days=60),
                                                                   title="Training far ahead")  # fmt: skip
    return account


def _text(pdf: bytes, *options: str) -> str:
    done = subprocess.run(["pdftotext", *options, "-", "-"], input=pdf, capture_output=True, check=True)
    return done.stdout.decode()


def test_the_english_report_keeps_heading_words_whole_and_lists_items_due(reported, client_for):
    pdf = client_for("manager").get(reverse("keyaccounts:report-pdf"), **EN)
    assert pdf.status_code == 200 and pdf["Content-Type"] == "application/pdf"
    words = set(_text(pdf.content).split())
    for heading in ("Items done", "Items open", "Items overdue", "Meetings held", "Latest evaluation",
                    "Agreement status", "Agreement ends", "Service item", "Days overdue", "Progress (%)"):  # fmt: skip
        assert set(heading.split()) <= words, heading  # every word whole: "Meetin gs", "overdu e" are gone
    text = _text(pdf.content, "-layout")
    assert "Open plan items overdue or due within 30 days" in text
    assert "Dose adjustment support" in text
    assert "Training far ahead" not in text  # due in 60 days
    section = text.split("Open plan items overdue or due within 30 days")[1]
    assert reported.number in section and (_today() - dt.timedelta(days=5)).isoformat() in section


def test_the_chinese_report_wraps_chinese_and_speaks_chinese(reported, client_for):
    pdf = client_for("manager").get(reverse("keyaccounts:report-pdf"), HTTP_ACCEPT_LANGUAGE="zh-hans")
    raw = _text(pdf.content)
    assert "北京协和医院" in raw.replace("\n", "")
    assert "编号" in raw or "客户" in raw  # the headings in Chinese
    title = LONG_TITLE
    lines = [line.strip() for line in _text(pdf.content, "-raw").splitlines()]
    pieces = [line for line in lines if line and line in title]
    assert len(pieces) >= 2 and "".join(pieces) == title  # wrapped over several lines, nothing lost


def test_the_excel_report_has_a_second_sheet_of_items_due(reported, client_for):
    xlsx = client_for("manager").get(reverse("keyaccounts:report-xlsx"), **EN)
    book = load_workbook(io.BytesIO(xlsx.content))
    assert len(book.worksheets) == 2
    summary, items = book.worksheets
    assert summary.cell(2, 1).value == reported.number
    assert items.title == "Items due"
    header = [c.value for c in items[1]]
    assert header == ["Number", "Customer", "Service item", "Area", "Owner", "Deadline", "Days overdue", "Status",
                      "Progress (%)"]  # fmt: skip
    rows = [[c.value for c in row] for row in items.iter_rows(min_row=2)]
    assert [r[2] for r in rows] == [LONG_TITLE, "Dose adjustment support"]
    overdue = rows[0]
    assert overdue[0] == reported.number and overdue[4] == "kam"
    assert (overdue[5], overdue[6], overdue[8]) == ((_today() - dt.timedelta(days=5)).isoformat(), 5, 40)
    assert rows[1][6] is None
    zh = load_workbook(io.BytesIO(client_for("manager").get(reverse("keyaccounts:report-xlsx"),
                                                            HTTP_ACCEPT_LANGUAGE="zh-hans").content))  # fmt: skip
    assert zh.worksheets[0].cell(1, 1).value != "Number"  # the sheet speaks the reader's language
    assert len(zh.worksheets) == 2


def test_the_report_of_an_account_without_items_due_says_so(users, xiehe, with_plan, client_for):
    account, plan = with_plan(xiehe)
    plan.items.update(deadline=_today() + dt.timedelta(days=90))
    text = _text(client_for("manager").get(reverse("keyaccounts:report-pdf"), {"account": account.pk}, **EN).content,
                 "-layout")  # fmt: skip
    assert "No open items overdue or due within 30 days." in text
