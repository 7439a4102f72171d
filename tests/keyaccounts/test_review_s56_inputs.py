"""Session 56 (QA), what the key-account programme takes in: a meeting dated 0001-01-01 through the API was a server
error (DRF's time-zone handling overflowed), a meeting up to a day ahead was accepted and counted as the last one
held, and an evaluation period typed with Arabic-Indic digits was stored as a period of its own beside 2026Q3."""

from __future__ import annotations

import datetime as dt

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse
from django.utils import timezone, translation
from rest_framework.exceptions import ValidationError as DRFValidationError
from rest_framework.test import APIClient

from pharmacrm.core.api_utils import SafeDateTimeField
from pharmacrm.keyaccounts import services
from pharmacrm.keyaccounts.models import AccountReview, KeyAccount, Meeting
from tests.api.conftest import token_for

from .programme_fixtures import *  # noqa: F403

pytestmark = pytest.mark.django_db
BASE = "/api/v1/keyaccounts/"
FUTURE = "lies in the future: minutes are recorded for a meeting that took place"


def _api(user, lang: str = "en") -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token_for(user)}", HTTP_ACCEPT_LANGUAGE=lang)
    return client


def _meeting(account, held_at: str) -> dict:
    return {"account": account.pk, "held_at": held_at, "title": "季度沟通会", "minutes": "讨论供货与培训"}


@pytest.fixture
def account(users, xiehe, staffed) -> KeyAccount:
    """协和, a key account listed a year ago (a past quarter can be evaluated) with the kam's team."""
    account = staffed(xiehe)
    KeyAccount.objects.filter(pk=account.pk).update(listed_at=timezone.now() - dt.timedelta(days=400))
    return KeyAccount.objects.get(pk=account.pk)


# --- 3. a time before the calendar's start in UTC ------------------------------------------------------------------


@pytest.mark.parametrize("held_at", ["0001-01-01T00:00:00", "0001-01-01", "0001-01-01T00:00:00+08:00"])
def test_a_meeting_held_on_the_calendars_first_day_is_a_field_error_not_a_server_error(users, account, held_at):
    r = _api(users["kam"]).post(f"{BASE}meetings/", _meeting(account, held_at), format="json")
    assert r.status_code == 400, r.content[:300]
    assert list(r.json()) == ["held_at"]
    assert not Meeting.objects.filter(account=account).exists()


def test_the_shared_date_time_field_refuses_what_utc_cannot_hold_and_keeps_the_safety_floor():
    """One field for every API that takes a date and time (pharmacovigilance's included, whose check came after DRF's
    own and overflowed the same way): naive 0001-01-01 in China's time zone lies in year 0 in UTC."""
    from pharmacrm.safety import api as safety_api

    assert safety_api.SafeDateTimeField is SafeDateTimeField  # moved, not copied
    for value in ("0001-01-01T00:00:00", "0001-01-01"):
        with pytest.raises(DRFValidationError):
            SafeDateTimeField().to_internal_value(value)
    floor = dt.datetime(1950, 1, 1, tzinfo=dt.UTC)
    with pytest.raises(DRFValidationError) as e, translation.override("en"):
        SafeDateTimeField(earliest=floor).to_internal_value("1949-12-31T12:00:00Z")
    assert "too long ago" in str(e.value.detail[0])
    with pytest.raises(DRFValidationError):
        SafeDateTimeField(earliest=floor).to_internal_value("0001-01-01T00:00:00")
    assert SafeDateTimeField(earliest=floor).to_internal_value("2026-03-01T09:00:00+08:00").year == 2026


# --- 4. a meeting in the future -------------------------------------------------------------------------------------


def test_a_meeting_an_hour_ahead_is_refused_through_the_api_naming_the_field(users, account):
    ahead = timezone.localtime() + dt.timedelta(hours=1)
    r = _api(users["kam"]).post(f"{BASE}meetings/", _meeting(account, ahead.isoformat()), format="json")
    assert r.status_code == 400
    assert FUTURE in r.json()["held_at"][0] and ahead.strftime("%Y-%m-%d %H:%M") in r.json()["held_at"][0]
    r = _api(users["kam"], "zh-hans").post(f"{BASE}meetings/", _meeting(account, ahead.isoformat()), format="json")
    assert r.status_code == 400 and "held_at" in r.json()
    assert not Meeting.objects.filter(account=account).exists()
    # the meeting due keeps counting from no meeting: nothing was reset
    assert services.meeting_due(account).last is None


def test_a_meeting_a_few_minutes_ahead_of_the_servers_clock_is_taken(users, account):
    """A device's clock running a minute or two fast is no reason to refuse the minutes."""
    held = timezone.now() + dt.timedelta(minutes=3)
    meeting = services.record_meeting(users["kam"], account, {"held_at": held, "title": "季度沟通会",
                                                               "minutes": "讨论供货"})  # fmt: skip
    assert meeting.held_at == held


def test_the_meeting_form_refuses_tomorrows_meeting_under_its_field(users, account, client_for):
    tomorrow = timezone.localtime() + dt.timedelta(days=1)
    page = client_for("kam").post(
        reverse("keyaccounts:meeting-create", args=[account.pk]),
        {"meeting-held_at": tomorrow.strftime("%Y-%m-%dT%H:%M"), "meeting-title": "季度沟通会",
         "meeting-minutes": "讨论供货"},
        HTTP_ACCEPT_LANGUAGE="en",
    )  # fmt: skip
    assert page.status_code == 400
    form = page.context["meeting_form"]
    assert FUTURE in form.errors["held_at"][0]
    assert not Meeting.objects.filter(account=account).exists()


def test_recording_a_meeting_in_the_future_through_the_service_is_refused(users, account):
    with pytest.raises(ValidationError) as e, translation.override("en"):
        services.record_meeting(users["kam"], account, {"held_at": timezone.now() + dt.timedelta(hours=20),
                                                        "title": "季度沟通会", "minutes": "讨论供货"})  # fmt: skip
    assert FUTURE in e.value.message_dict["held_at"][0]


# --- 5. periods in other digits --------------------------------------------------------------------------------------


@pytest.mark.parametrize("typed", ["٢٠٢٦Q٣", "۲۰۲۶", "2026Q٣", "२०२६Q3"])
def test_a_period_in_other_than_ascii_digits_is_refused_under_period(typed):
    with pytest.raises(ValidationError) as e, translation.override("en"):
        services.period_bounds(typed, ended=False)
    assert e.value.message_dict["period"] == ["Write the period as 2026Q3 (a quarter) or 2026 (a year)."]


def test_full_width_and_lower_case_periods_are_the_ascii_period():
    assert services.period_label("２０２６ｑ３") == "2026Q3"
    assert services.period_bounds("２０２６ｑ３", ended=False) == (dt.date(2026, 7, 1), dt.date(2026, 9, 30))
    assert services.period_bounds("2026", ended=False) == (dt.date(2026, 1, 1), dt.date(2026, 12, 31))


def test_an_evaluation_asked_for_in_arabic_indic_digits_is_not_stored_beside_the_period(users, account):
    period = services.previous_quarter(timezone.localdate())
    arabic = period.translate(str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩"))
    r = _api(users["kam"]).post(f"{BASE}account-reviews/run/", {"account": account.pk, "period": arabic},
                                format="json")  # fmt: skip
    assert r.status_code == 400 and list(r.json()) == ["period"]
    with pytest.raises(ValidationError):
        services.review_account(account, arabic, user=users["kam"])
    assert not AccountReview.objects.exists()
    # the scorecards page says it is no period rather than showing an empty one
    page = _page_for(users, arabic)
    assert "Write the period as 2026Q3" in page
    # the period written in ASCII (or full width) is the one stored
    services.review_account(account, period.translate(str.maketrans("0123456789Q", "０１２３４５６７８９Ｑ")))
    assert list(AccountReview.objects.values_list("period", flat=True)) == [period]


def _page_for(users, period: str) -> str:
    from django.test import Client

    from tests.conftest import otp_verify

    client = Client()
    client.force_login(users["manager"])
    otp_verify(client, users["manager"])
    return client.get(reverse("keyaccounts:scorecards"), {"period": period}, HTTP_ACCEPT_LANGUAGE="en").content.decode()


def test_the_meeting_form_refuses_the_calendars_first_day_under_its_field(users, account, client_for):
    page = client_for("kam").post(
        reverse("keyaccounts:meeting-create", args=[account.pk]),
        {"meeting-held_at": "0001-01-01T00:00", "meeting-title": "季度沟通会", "meeting-minutes": "讨论供货"},
        HTTP_ACCEPT_LANGUAGE="en",
    )  # fmt: skip
    assert page.status_code == 400
    assert page.context["meeting_form"].errors["held_at"]
    assert not Meeting.objects.filter(account=account).exists()
