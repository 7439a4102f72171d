"""Review round 21: interactions as reps and KAMs log them — a mistyped year, a doctor of another hospital."""

from __future__ import annotations

from django.utils import timezone

from pharmacrm.engagement.models import Interaction
from pharmacrm.safety.models import Flag


def _form(institution, **extra) -> dict:
    local = timezone.localtime(timezone.now())
    return {"institution": institution.pk if institution else "", "channel": "visit",
            "received_at": local.strftime("%Y-%m-%dT%H:%M"), "subject": "科室拜访", "notes": "", **extra}  # fmt: skip


def test_a_visit_with_a_mistyped_year_is_refused_on_the_field_not_given_day_0_centuries_ago(client_for, xiehe):
    # the date picker takes any year: 0226 instead of 2026 would start PV's clock in the year 226, breached at once
    response = client_for("rep").post(
        "/interactions/new/", _form(xiehe, received_at="0226-12-01T10:00", notes="患者用药后出现皮疹")
    )

    assert response.status_code == 400
    assert "时间过早，请检查互动日期。" in response.content.decode()
    assert not Interaction.objects.exists() and not Flag.objects.exists()

