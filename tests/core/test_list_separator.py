"""Lists in running text are joined with the reader's separator: 甲、乙 on a Chinese page, "A, B" on an English one.
An English reader saw the Chinese enumeration comma (、) between a user's teams and territory on the users page,
between a hospital's specialties, in a customer's missing licences, between the years of a provisional deadline
(pages and the reconciliation export), in the loyalty programme's refusal and in the targets' conflict message."""

from __future__ import annotations

import re

from django.template.loader import render_to_string
from django.utils import translation

from pharmacrm.core.models import Team
from pharmacrm.loyalty import services as loyalty
from pharmacrm.safety import views_triage


def text(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


def test_the_users_page_lists_teams_and_territory_with_the_readers_separator(users, client_for, beijing, shanghai):
    rep = users["rep"]
    rep.teams.add(Team.objects.create(name="华东团队"))
    rep.territory.add(beijing, shanghai)
    admin = client_for("admin")
    english = text(admin.get("/accounts/users/", HTTP_ACCEPT_LANGUAGE="en").content.decode())
    assert "华北团队, 华东团队" in english or "华东团队, 华北团队" in english
    assert "团队、" not in english and "市、" not in english
    chinese = text(admin.get("/accounts/users/", HTTP_ACCEPT_LANGUAGE="zh-hans").content.decode())
    assert "华北团队、华东团队" in chinese or "华东团队、华北团队" in chinese


def test_a_hospitals_specialties_are_listed_with_the_readers_separator(xiehe, client_for):
    manager = client_for("manager")
    english = text(manager.get(f"/customers/institutions/{xiehe.pk}/", HTTP_ACCEPT_LANGUAGE="en").content.decode())
    assert "内科, 心内科" in english and "内科、心内科" not in english
    chinese = text(manager.get(f"/customers/institutions/{xiehe.pk}/", HTTP_ACCEPT_LANGUAGE="zh-hans").content.decode())
    assert "内科、心内科" in chinese


def test_the_years_of_a_provisional_deadline_are_listed_with_the_readers_separator():
    for template in ("partials/provisional_deadline.html", "partials/provisional_mark.html"):
        with translation.override("en"):
            assert "2027, 2028" in render_to_string(template, {"uncovered": [2027, 2028]})
        with translation.override("zh-hans"):
            assert "2027、2028" in render_to_string(template, {"uncovered": [2027, 2028]})
    with translation.override("en"):
        assert views_triage._years([2027, 2028]) == "2027, 2028"  # the reconciliation export's column


def test_the_loyalty_refusal_lists_the_eligible_types_with_the_readers_separator(xiehe):
    with translation.override("en"):
        message = loyalty.eligibility_error(xiehe)
    assert "Hospital customers cannot join" in message and "、" not in message
