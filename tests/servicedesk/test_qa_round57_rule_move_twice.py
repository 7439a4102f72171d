"""Session 57 (QA, duplicate submissions): an assignment rule's ↑ or ↓ clicked twice quickly (or a colleague
reordering meanwhile) moved the rule two places — the first rule that matches routes the ticket, so the order is
what the desk runs on. The arrow now sends the position its page showed: when the order changed since, nothing
moves and the page says so."""

from __future__ import annotations

import pytest
from django.urls import reverse

from pharmacrm.core.models import Team
from pharmacrm.servicedesk.models import AssignmentRule

pytestmark = pytest.mark.django_db


def _order() -> list[str]:
    return list(AssignmentRule.objects.order_by("position", "name", "id").values_list("name", flat=True))


def test_an_arrow_clicked_twice_moves_the_rule_one_place(client_for):
    team = Team.objects.create(name="一组")
    for i, name in enumerate(("甲", "乙", "丙"), start=1):
        AssignmentRule.objects.create(name=name, team=team, position=i * 10)
    manager = client_for("manager")
    page = manager.get(reverse("servicedesk:assignment-rules")).content.decode()
    assert 'name="position" value="30"' in page  # the arrow carries the position shown
    third = AssignmentRule.objects.get(name="丙")
    url = reverse("servicedesk:assignment-rule-move", args=[third.pk])

    manager.post(url, {"direction": "up", "position": "30"})
    again = manager.post(url, {"direction": "up", "position": "30"}, HTTP_ACCEPT_LANGUAGE="en", follow=True)

    assert _order() == ["甲", "丙", "乙"]  # one place up, not two
    assert "The order of the rules changed since this page was loaded" in again.content.decode()
    # from the page as it is now, it moves
    manager.post(url, {"direction": "up", "position": str(AssignmentRule.objects.get(pk=third.pk).position)})
    assert _order() == ["丙", "甲", "乙"]
