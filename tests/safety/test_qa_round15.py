"""A new safety case sent twice (a replay, a double click) opens one case: two AE numbers for one report
would mean two reports to the regulator."""

from __future__ import annotations

import datetime as dt

from django.urls import reverse
from django.utils import timezone

from pharmacrm.safety.models import SafetyCase


def test_the_new_case_form_sent_twice_opens_one_case(client_for):
    pv = client_for("pv")
    page = pv.get(reverse("safety:case-new"))
    token = page.context["form"]["form_token"].value()
    assert token and 'name="form_token"' in page.content.decode()
    day0 = timezone.localtime() - dt.timedelta(days=1)
    data = {
        "kind": "adverse_reaction", "received_at": day0.strftime("%Y-%m-%dT%H:%M"), "reporter_name": "刘药师",
        "reporter_qualification": "2", "patient_name": "赵某", "patient_age": "60", "drug_brand_name": "罗氏芬",
        "reaction_verbatim": "恶心呕吐", "narrative": "服药后恶心呕吐。", "form_token": token,
    }  # fmt: skip
    first = pv.post(reverse("safety:case-new"), data)
    again = pv.post(reverse("safety:case-new"), data)
    case = SafetyCase.objects.get()
    assert first.status_code == again.status_code == 302
    assert again["Location"] == first["Location"] == reverse("safety:case", args=[case.pk])
