"""A key account page's forms sent twice (a double click on Save): a new plan item, meeting or trial offer answered the
second time with a 409 "already recorded" error, a new agreement with "already covers this plan version" — the first
had saved it. Each form now carries a one-time token: the second sending saves nothing and shows the section as the
first one left it."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from django.urls import reverse
from django.utils import timezone

from pharmacrm.keyaccounts import services
from pharmacrm.keyaccounts.choices import PlanArea
from pharmacrm.keyaccounts.models import Meeting, PlanItem, TrialOffer

from .programme_fixtures import *  # noqa: F403

pytestmark = pytest.mark.django_db
SENT_AGAIN = "This form was already sent: the record was created then, and not a second time."


def _token(client, account, prefix: str) -> str:
    page = client.get(reverse("keyaccounts:account", args=[account.pk])).content.decode()
    return re.search(rf'name="{prefix}-form_token" value="([A-Za-z0-9_-]+)"', page).group(1)


def _twice(client, url, form) -> str:
    first = client.post(url, form)
    assert first.status_code == 302, first.content.decode()[-2000:]
    again = client.post(url, form, follow=True, HTTP_ACCEPT_LANGUAGE="en")
    assert again.status_code == 200
    page = again.content.decode()
    assert SENT_AGAIN in page and "already recorded" not in page and "already covers" not in page
    return page


def test_a_meeting_and_a_trial_offer_sent_twice_are_recorded_once(users, staffed, xiehe, client_for):
    from pharmacrm.servicedesk.models import Product

    account = staffed(xiehe)
    kam = client_for("kam")
    held = timezone.localtime().replace(second=0, microsecond=0)
    meeting = {"meeting-held_at": held.strftime("%Y-%m-%dT%H:%M"), "meeting-title": "季度服务沟通会",
               "meeting-minutes": "讨论第四季度供货与培训安排。", "meeting-form_token": _token(kam, account, "meeting")}  # fmt: skip
    _twice(kam, reverse("keyaccounts:meeting-create", args=[account.pk]), meeting)
    assert Meeting.objects.filter(account=account).count() == 1

    product = Product.objects.create(brand_name="新药", generic_name="新药片", dosage_form="片剂", strength="10mg")
    trial = {"trial-product": product.pk, "trial-offered_on": timezone.localdate().isoformat(),
             "trial-form_token": _token(kam, account, "trial")}  # fmt: skip
    _twice(kam, reverse("keyaccounts:trial-create", args=[account.pk]), trial)
    assert TrialOffer.objects.filter(account=account).count() == 1


def test_a_plan_item_sent_twice_is_added_once(users, staffed, xiehe, client_for):
    account = staffed(xiehe)
    plan = services.start_plan(users["kam"], account)
    kam = client_for("kam")
    item = {"item-area": PlanArea.SUPPLY, "item-title": "紧急订单 48 小时送达", "item-standard": "48 小时内送达",
            "item-owner": users["kam"].pk, "item-deadline": (timezone.localdate() + dt.timedelta(days=30)).isoformat(),
            "item-form_token": _token(kam, account, "item")}  # fmt: skip

    _twice(kam, reverse("keyaccounts:item-add", args=[account.pk]), item)

    assert PlanItem.objects.filter(plan=plan, title="紧急订单 48 小时送达").count() == 1


def test_an_agreement_sent_twice_is_generated_once(users, xiehe, with_plan, client_for):
    account, _plan = with_plan(xiehe)
    today = timezone.localdate()
    kam = client_for("kam")
    term = {"agreement-start_date": today.isoformat(), "agreement-end_date": (today + dt.timedelta(days=364)).isoformat(),
            "agreement-renewal_notice_days": 60, "agreement-form_token": _token(kam, account, "agreement")}  # fmt: skip

    page = _twice(kam, reverse("keyaccounts:agreement-create", args=[account.pk]), term)

    agreement = account.agreements.get()  # one number
    assert agreement.number in page


def test_a_proposal_sent_twice_is_sent_once_and_the_second_shows_it(client_for, users, ruijin, candidate):
    from pharmacrm.keyaccounts.models import Proposal

    candidate(ruijin, score="88.00")
    analyst = client_for("analyst")
    page = analyst.get(reverse("keyaccounts:proposal-create") + f"?institution={ruijin.pk}").content.decode()
    form = {"institution": ruijin.pk, "kind": "list", "reason": "年采购额大",
            "form_token": re.search(r'name="form_token" value="([A-Za-z0-9_-]+)"', page).group(1)}  # fmt: skip

    first = analyst.post(reverse("keyaccounts:proposal-create"), form)
    again = analyst.post(reverse("keyaccounts:proposal-create"), form, follow=True, HTTP_ACCEPT_LANGUAGE="en")

    proposal = Proposal.objects.get(institution=ruijin)
    assert first.status_code == 302
    assert again.redirect_chain[-1][0] == reverse("keyaccounts:proposal", args=[proposal.pk])
    assert SENT_AGAIN in again.content.decode()
