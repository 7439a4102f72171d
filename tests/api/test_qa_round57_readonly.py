"""Session 57 (API QA): the read-only auditor is refused a write at once — 403, audited as a refused write — on the
quality reviews, the churn warnings, the cooperation projects and the loyalty redemptions. It was answered 400 with
the fields to fill in (`ticket`, `reason`, `task`, `version`), as if it could make the change, and the refusal that
came later (if the fields were filled in) was the only trace."""

from __future__ import annotations

import pytest
from django.utils import timezone

from pharmacrm.core.models import AuditEntry
from pharmacrm.sales.models import ChurnSignal

pytestmark = pytest.mark.django_db


def test_the_auditor_is_refused_before_the_form_and_the_refusal_is_audited(api_for, users, xiehe):
    today = timezone.localdate()
    signal = ChurnSignal.objects.create(institution=xiehe, level="lapsed", detected_on=today, refreshed_on=today,
                                        base_avg_fen=100_000, recent_avg_fen=0, base_months=12)  # fmt: skip
    auditor = api_for("auditor", lang="zh-hans")
    assert [x["id"] for x in auditor.get("/api/v1/sales/churn/").json()["results"]] == [signal.pk]  # reads as before
    assert auditor.get("/api/v1/service/quality-reviews/").status_code == 200

    for method, url in [
        ("post", "/api/v1/service/quality-reviews/"),
        ("patch", "/api/v1/service/quality-reviews/1/"),
        ("post", "/api/v1/service/quality-reviews/1/appeal/"),
        ("post", "/api/v1/service/quality-reviews/1/decide-appeal/"),
        ("post", f"/api/v1/sales/churn/{signal.pk}/dismiss/"),
        ("post", "/api/v1/cooperation/projects/1/task-progress/"),
        ("post", "/api/v1/loyalty/redemptions/1/fulfil/"),
    ]:
        response = getattr(auditor, method)(url, {}, format="json")
        assert response.status_code == 403, (url, response.status_code, response.content)
        assert AuditEntry.objects.filter(action="access_denied", actor=users["auditor"], object_repr=url).exists(), url
    assert ChurnSignal.objects.get(pk=signal.pk).resolved_on is None


def test_who_may_act_still_gets_the_fields_to_fill_in(api_for, users, xiehe):
    today = timezone.localdate()
    signal = ChurnSignal.objects.create(institution=xiehe, level="lapsed", detected_on=today, refreshed_on=today,
                                        base_avg_fen=100_000, recent_avg_fen=0, base_months=12)  # fmt: skip

    response = api_for("manager").post(f"/api/v1/sales/churn/{signal.pk}/dismiss/", {}, format="json")

    assert response.status_code == 400 and list(response.json()) == ["reason"]
    assert api_for("expert").post("/api/v1/service/quality-reviews/", {}, format="json").status_code == 400
