"""An assignment rule's Deactivate / Activate button ignored the version its page showed: a colleague's change in
between was overwritten unseen. The button carries the version now: a stale one (or none) changes nothing and says
so; the same button clicked twice (a double click) acts once and the second answer says what the first did."""

from __future__ import annotations

import pytest
from django.urls import reverse

from pharmacrm.core.models import AuditEntry, Team
from pharmacrm.servicedesk.models import AssignmentRule

pytestmark = pytest.mark.django_db


def _rule():
    return AssignmentRule.objects.create(name="用药差错", team=Team.objects.create(name="一组"), position=10)


def test_deactivate_clicked_twice_acts_once_and_says_so(client_for):
    rule = _rule()
    manager = client_for("manager")
    page = manager.get(reverse("servicedesk:assignment-rules")).content.decode()
    assert f'name="version" value="{rule.version}"' in page
    url = reverse("servicedesk:assignment-rule-active", args=[rule.pk])

    assert manager.post(url, {"version": rule.version}).status_code == 302
    again = manager.post(url, {"version": rule.version}, follow=True, HTTP_ACCEPT_LANGUAGE="en").content.decode()

    assert "was deactivated" in again and "Someone else changed" not in again
    assert AssignmentRule.objects.get(pk=rule.pk).active is False
    assert AuditEntry.objects.filter(object_type="servicedesk.assignmentrule", action="update").count() == 1


def test_a_colleagues_same_change_in_between_is_still_stale(client_for):
    rule = _rule()
    url = reverse("servicedesk:assignment-rule-active", args=[rule.pk])
    assert client_for("admin").post(url, {"version": rule.version}).status_code == 302

    mine = client_for("manager").post(url, {"version": rule.version}, follow=True, HTTP_ACCEPT_LANGUAGE="en")

    assert "Someone else changed the rule" in mine.content.decode()


def test_a_stale_toggle_changes_nothing(client_for):
    rule = _rule()
    loaded = rule.version
    url = reverse("servicedesk:assignment-rule-active", args=[rule.pk])
    assert client_for("manager").post(url, {"version": loaded}).status_code == 302  # a colleague deactivates it
    rule.refresh_from_db()
    colleague = client_for("manager")
    assert colleague.post(url, {"version": rule.version, "active": "1"}).status_code == 302  # and activates it again

    mine = client_for("manager")
    stale = mine.post(url, {"version": loaded}, follow=True, HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert "Someone else changed the rule" in stale
    assert AssignmentRule.objects.get(pk=rule.pk).active is True
    without = mine.post(url, {}, follow=True, HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert "Someone else changed the rule" in without and AssignmentRule.objects.get(pk=rule.pk).active is True
