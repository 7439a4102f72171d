"""An agreement's term lies within the validity of the service plan it is generated from: the form proposes the
plan's validity (a renewal runs to its end at most), and a term outside it is refused under the field it breaks, on
the page and in the API; the renewal reminder follows the term."""

from __future__ import annotations

import datetime as dt
import io

import pytest
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.urls import reverse
from django.utils import timezone, translation

from pharmacrm.keyaccounts import services
from pharmacrm.keyaccounts.models import Agreement, ServicePlan

from .programme_fixtures import *  # noqa: F403

pytestmark = pytest.mark.django_db


@pytest.fixture
def valid_plan(users, xiehe, with_plan, settings, tmp_path):
    """协和's approved plan, valid from 10 days ago to 200 days ahead. → (account, plan)."""
    settings.VAR_DIR = tmp_path
    account, plan = with_plan(xiehe)
    today = timezone.localdate()
    ServicePlan.objects.filter(pk=plan.pk).update(valid_from=today - dt.timedelta(days=10),
                                                   valid_to=today + dt.timedelta(days=200))  # fmt: skip
    plan.refresh_from_db()
    return account, plan


def test_generation_proposes_the_plans_validity(valid_plan):
    account, plan = valid_plan
    assert services.default_agreement_term(account) == (plan.valid_from, plan.valid_to)


def test_a_plan_valid_from_a_later_day_proposes_its_term_from_then(valid_plan):
    account, plan = valid_plan
    start = timezone.localdate() + dt.timedelta(days=30)
    ServicePlan.objects.filter(pk=plan.pk).update(valid_from=start, valid_to=None)
    assert services.default_agreement_term(account)[0] == start
    ServicePlan.objects.filter(pk=plan.pk).update(valid_to=start + dt.timedelta(days=90))
    assert services.default_agreement_term(account) == (start, start + dt.timedelta(days=90))


def test_a_term_outside_the_validity_is_refused_under_its_field(users, valid_plan):
    account, plan = valid_plan
    with translation.override("en"):
        with pytest.raises(ValidationError) as late:
            services.generate_agreement(users["kam"], account, start_date=plan.valid_from,
                                        end_date=plan.valid_to + dt.timedelta(days=1))  # fmt: skip
        assert late.value.message_dict == {"end_date": [
            f"The agreement ends within its service plan's validity: on {plan.valid_to.isoformat()} or before."]}
        with pytest.raises(ValidationError) as early:
            services.generate_agreement(users["kam"], account, start_date=plan.valid_from - dt.timedelta(days=1),
                                        end_date=plan.valid_to)  # fmt: skip
        assert early.value.message_dict == {"start_date": [
            f"The agreement starts within its service plan's validity: on {plan.valid_from.isoformat()} or later."]}
    assert not account.agreements.exists()
    agreement = services.generate_agreement(users["kam"], account, start_date=plan.valid_from, end_date=plan.valid_to)
    # the renewal reminder follows the term: 60 days before the plan's validity ends
    assert services._renewal_moment(agreement).date() == plan.valid_to - dt.timedelta(days=60)


def test_a_renewal_runs_to_the_end_of_the_validity_and_no_further(users, valid_plan):
    account, plan = valid_plan
    today = timezone.localdate()
    services.generate_agreement(users["kam"], account, start_date=today, end_date=today + dt.timedelta(days=99))
    # the same length again would run past the plan: it ends with the plan's validity
    assert services.default_agreement_term(account) == (today + dt.timedelta(days=100), plan.valid_to)
    services.generate_agreement(users["kam"], account, start_date=today + dt.timedelta(days=100),
                                end_date=plan.valid_to)  # fmt: skip
    # after the validity, a renewal needs a new plan version
    start = plan.valid_to + dt.timedelta(days=1)
    with translation.override("en"):
        with pytest.raises(ValidationError) as after:
            services.generate_agreement(users["kam"], account, start_date=start, end_date=start + dt.timedelta(days=90))
        assert list(after.value.message_dict) == ["start_date"]
        assert f"valid until {plan.valid_to.isoformat()}" in after.value.message_dict["start_date"][0]


def test_the_api_and_the_page_refuse_it_under_the_field(users, valid_plan, api_client, client_for):
    account, plan = valid_plan
    late = (plan.valid_to + dt.timedelta(days=30)).isoformat()
    r = api_client("kam").post("/api/v1/keyaccounts/agreements/", {
        "account": account.pk, "start_date": plan.valid_from.isoformat(), "end_date": late}, format="json")  # fmt: skip
    assert r.status_code == 400 and list(r.json()) == ["end_date"]
    assert "service plan's validity" in r.json()["end_date"][0]
    page = client_for("kam").post(reverse("keyaccounts:agreement-create", args=[account.pk]), {
        "agreement-start_date": plan.valid_from.isoformat(), "agreement-end_date": late,
        "agreement-renewal_notice_days": 60}, HTTP_ACCEPT_LANGUAGE="en")  # fmt: skip
    assert page.status_code == 400
    assert not account.agreements.exists()


def _generated_before_the_rule(users, valid_plan):
    """An agreement generated before the term rule: it runs 30 days past its plan's validity."""
    account, plan = valid_plan
    agreement = services.generate_agreement(users["kam"], account, start_date=plan.valid_from, end_date=plan.valid_to)
    Agreement.objects.filter(pk=agreement.pk).update(end_date=plan.valid_to + dt.timedelta(days=30))
    agreement.refresh_from_db()
    return account, plan, agreement


def test_an_agreement_generated_before_the_rule_is_flagged_on_the_pages_and_in_the_api(users, valid_plan, api_client,
                                                                                        client_for):  # fmt: skip
    account, plan, agreement = _generated_before_the_rule(users, valid_plan)
    warning = (f"The term runs past the validity of its plan (v{plan.version_number}, valid until "
               f"{plan.valid_to.isoformat()}): approve a new plan version whose validity covers the term.")  # fmt: skip
    for url in (reverse("keyaccounts:account", args=[account.pk]), reverse("keyaccounts:agreements")):
        page = client_for("kam").get(url, HTTP_ACCEPT_LANGUAGE="en").content.decode()
        assert warning in " ".join(page.split()), url
    body = api_client("kam").get(f"/api/v1/keyaccounts/agreements/{agreement.pk}/").json()
    assert body["outside_plan_validity"] is True
    Agreement.objects.filter(pk=agreement.pk).update(end_date=plan.valid_to)  # the term amended: no warning
    body = api_client("kam").get(f"/api/v1/keyaccounts/agreements/{agreement.pk}/").json()
    assert body["outside_plan_validity"] is False
    page = client_for("kam").get(reverse("keyaccounts:account", args=[account.pk]), HTTP_ACCEPT_LANGUAGE="en")
    assert "agreement-outside-validity" not in page.content.decode()


def test_one_starting_before_the_validity_says_so(users, valid_plan, client_for):
    account, plan = valid_plan
    agreement = services.generate_agreement(users["kam"], account, start_date=plan.valid_from, end_date=plan.valid_to)
    Agreement.objects.filter(pk=agreement.pk).update(start_date=plan.valid_from - dt.timedelta(days=5))
    page = client_for("kam").get(reverse("keyaccounts:account", args=[account.pk]), HTTP_ACCEPT_LANGUAGE="en")
    assert f"valid from {plan.valid_from.isoformat()}): approve a new plan version" in " ".join(
        page.content.decode().split())


def test_the_check_command_lists_them(users, valid_plan):
    out = io.StringIO()
    with translation.override("en"):
        call_command("keyaccounts", "check", stdout=out)  # none yet: exit status 0
        assert "No agreement's term lies outside its plan's validity." in out.getvalue()
        account, plan, agreement = _generated_before_the_rule(users, valid_plan)
        out = io.StringIO()
        with pytest.raises(SystemExit) as exit_status:
            call_command("keyaccounts", "check", stdout=out)
    assert exit_status.value.code == 1
    text = out.getvalue()
    assert agreement.number in text and account.institution.name in text
    assert f"{plan.valid_from.isoformat()} – {plan.valid_to.isoformat()}" in text
    assert "1 agreement(s) outside their plan's validity" in text
