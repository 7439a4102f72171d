"""From a count of the service performance page to its tickets (/service/performance/tickets/): every count
(received, resolved, reopened, complaints; of a row, of the totals, of the previous period, of a trend period)
links to a list as long as the count, under the same filters and scope."""

from __future__ import annotations

import re
from html import unescape

import pytest
from django.urls import reverse

from tests.servicedesk import test_performance as analysis
from tests.servicedesk.test_performance import PAGE, page_client

desk, november = analysis.desk, analysis.november  # the page's own fixtures

DRILL = "/service/performance/tickets/"
LINK = re.compile(r'<a href="(/service/performance/tickets/\?[^"]*)">\s*(\d+)\s*</a>')


def links(html: str) -> list[tuple[str, int]]:
    return [(unescape(href), int(n)) for href, n in LINK.findall(html)]


def listed(client, href) -> list[str]:
    response = client.get(href)
    assert response.status_code == 200, (href, response.content[:500])
    html = response.content.decode()
    numbers = re.findall(r'<tr data-number="(TK-[^"]+)"', html)
    assert f"{len(numbers)} ticket" in html  # the count line says as many
    return numbers


@pytest.mark.parametrize("group", ["agent", "team", "category", "channel"])
def test_every_count_lists_as_many_tickets(users, november, group):
    client = page_client(users["manager"])
    found = links(client.get(PAGE, {"period": "2026-11", "group": group}).content.decode())
    whats = {re.search(r"what=(\w+)", h).group(1) for h, _ in found}
    assert whats == {"tickets", "resolved", "reopened", "complaints"}
    assert any("period=2026-10" in h for h, _ in found)  # the previous period's totals and the trend link too
    assert len(found) >= 12
    for href, count in found:
        assert count > 0, href  # a zero is not a link
        assert len(listed(client, href)) == count, href


def test_the_lists_are_the_right_tickets(users, desk, november):
    client = page_client(users["manager"])
    n = {k: t.number for k, t in november.items()}
    a2 = desk["a2"].pk
    assert sorted(listed(client, f"{DRILL}?period=2026-11&what=tickets&row={a2}")) == sorted([n["T4"], n["T5"]])
    assert listed(client, f"{DRILL}?period=2026-11&what=reopened&row={a2}") == [n["T4"]]
    assert listed(client, f"{DRILL}?period=2026-11&group=channel&what=tickets&row=email") == [n["T8"]]
    # the totals: every ticket received in November (Beijing), not T6 (December) nor T7 (October)
    assert sorted(listed(client, f"{DRILL}?period=2026-11&what=tickets")) == sorted(
        n[k] for k in ("T1", "T2", "T3", "T4", "T5", "T8"))
    assert listed(client, f"{DRILL}?period=2026-10&what=tickets") == [n["T7"]]
    # a filter holds: 二组's November tickets
    assert listed(client, f"{DRILL}?period=2026-11&team={desk['two'].pk}&what=tickets") == [n["T8"]]


def test_an_agent_lists_only_their_own_tickets(users, desk, november):
    client = page_client(desk["a2"])
    found = links(client.get(PAGE, {"period": "2026-11"}).content.decode())
    assert found and all(len(listed(client, h)) == c for h, c in found)
    mine = {november["T4"].number, november["T5"].number}
    assert set(listed(client, f"{DRILL}?period=2026-11&what=tickets")) == mine
    # a colleague's row, typed by hand: nothing of theirs
    assert listed(client, f"{DRILL}?period=2026-11&what=tickets&row={desk['a1'].pk}") == []


def test_a_team_lead_lists_their_teams(users, desk, november):
    numbers = listed(page_client(desk["lead"]), f"{DRILL}?period=2026-11&what=tickets")
    assert november["T8"].number not in numbers and len(numbers) == 5


def test_those_refused_the_page_are_refused_its_lists(users, november):
    assert page_client(users["pv"]).get(DRILL, {"period": "2026-11"}).status_code == 403


@pytest.mark.parametrize("params", [
    {"what": "colour"}, {"what": "tickets", "row": "x"}, {"what": "tickets", "group": "channel", "row": "fax"},
    {"what": "tickets", "group": "category", "row": ""}, {"period": "2026-13"},
    {"what": "tickets", "row": "9" * 23},  # an id longer than the database's failed there (500)
])
def test_a_link_that_is_not_the_pages_is_refused_with_a_reason(users, november, params):
    response = page_client(users["manager"]).get(DRILL, {"period": "2026-11", **params})
    assert response.status_code == 400
    html = response.content.decode()
    assert 'role="alert"' in html and "data-number" not in html
    assert ("the link is not valid" in html) or ("Give a month (2026-11)" in html)


@pytest.mark.parametrize("lang, heading, reason", [
    ("zh-hans", "工单", "链接无效"), ("en", "Tickets", "the link is not valid"), ("zh-hant", "工單", "連結無效"),
])
def test_the_list_and_its_refusal_in_three_languages(users, november, lang, heading, reason):
    client = page_client(users["manager"])
    client.defaults["HTTP_ACCEPT_LANGUAGE"] = lang
    assert heading in client.get(DRILL, {"period": "2026-11"}).content.decode()
    assert reason in client.get(DRILL, {"period": "2026-11", "what": "colour"}).content.decode()


@pytest.mark.parametrize(("name", "query"), [
    ("servicedesk:performance-export", {"period": "2026-13"}),
    ("servicedesk:performance-export", {"period": "2026-11", "team": "abc"}),
    ("servicedesk:performance-export", {"period": "2026-11", "group": "region"}),
    ("servicedesk:complaints-export", {"period": "garbage"}),
    ("servicedesk:quality-export", {"period": "9999"}),
])  # fmt: skip
def test_an_export_with_a_bad_filter_is_the_page_with_its_error_and_exports_nothing(users, name, query):
    """The export button carries the page's query string: a filter the page refused (400) must not give a workbook
    of other figures (this month, every team) nor an audit entry of an export that did not happen."""
    from pharmacrm.core.models import AuditEntry

    response = page_client(users["manager"]).get(reverse(name), query)
    assert response.status_code == 400 and response["Content-Type"].startswith("text/html")
    assert "attachment" not in response.get("Content-Disposition", "")
    assert not AuditEntry.objects.filter(action="export").exists()
