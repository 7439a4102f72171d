"""Keyboard handling in a real Chromium: on a queue j/k (↓/↑) move between tickets, x ticks one for a bulk
action, / goes to the search box, Enter opens the ticket; on the ticket page r and n open the composer as
a reply or a note, a and e open the assign and resolve sections, ? shows the help. Typing in a field never
triggers a shortcut."""

import pytest
from django.urls import reverse

from pharmacrm.servicedesk import services

from .conftest import shot, sign_in

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def tickets(users, xiehe):
    """Three open tickets assigned to the agent (the first is due first: it is the oldest)."""
    out = []
    for subject in ("第一张工单", "第二张工单", "第三张工单"):
        out.append(services.create_ticket(users["agent"], {
            "subject": subject, "channel": "phone", "category": "drug_info", "institution": xiehe,
            "assignee": users["agent"],
        }))  # fmt: skip
    return out


def current_number(page) -> str:
    return page.locator("tr.ticket-row.is-current").get_attribute("data-number") or ""


def test_queue_shortcuts_move_select_search_and_open(page, users, tickets):
    sign_in(page, "agent")
    page.goto(reverse("servicedesk:queue"))
    rows = page.locator("tr.ticket-row")
    numbers = [rows.nth(i).get_attribute("data-number") for i in range(rows.count())]
    assert sorted(numbers) == sorted(t.number for t in tickets)

    page.keyboard.press("j")
    assert current_number(page) == numbers[0]
    page.keyboard.press("j")
    page.keyboard.press("ArrowDown")
    assert current_number(page) == numbers[2]
    page.keyboard.press("k")
    assert current_number(page) == numbers[1]
    assert page.locator("tr.ticket-row.is-current").get_attribute("aria-current") == "true"

    page.keyboard.press("x")
    box = page.locator(f"tr[data-number='{numbers[1]}'] input[name=ticket]")
    assert box.is_checked()
    page.keyboard.press("x")
    assert not box.is_checked()
    page.keyboard.press("x")

    # "/" goes to the search box, and letters typed there stay there
    page.keyboard.press("/")
    search = page.locator("[data-keys-search]")
    assert search.evaluate("el => el === document.activeElement")
    page.keyboard.type("jkx")
    assert search.input_value() == "jkx" and current_number(page) == numbers[1] and box.is_checked()
    search.fill("")

    # a modifier key never triggers a shortcut
    page.locator(f"tr[data-number='{numbers[1]}']").focus()
    page.keyboard.press("Control+j")
    assert current_number(page) == numbers[1]

    # ? shows the help, Escape closes it
    page.keyboard.press("?")
    help_dialog = page.locator("#keys-help")
    assert help_dialog.is_visible() and help_dialog.get_by_text("j").first.is_visible()
    shot(page, "queue-keys-help")
    page.keyboard.press("Escape")
    assert not help_dialog.is_visible()

    page.locator(f"tr[data-number='{numbers[1]}']").focus()
    with page.expect_navigation():
        page.keyboard.press("Enter")
    ticket = next(t for t in tickets if t.number == numbers[1])
    assert page.url.endswith(reverse("servicedesk:ticket", args=[ticket.pk]))


def test_ticket_page_shortcuts_open_the_composer_assign_and_resolve(page, users, tickets):
    ticket = tickets[0]
    sign_in(page, "agent")
    page.goto(reverse("servicedesk:ticket", args=[ticket.pk]))
    body = page.locator("#message-body")

    page.keyboard.press("n")
    assert page.locator("#composer input[name=kind][value=note]").is_checked()
    assert body.evaluate("el => el === document.activeElement")
    # typing in the composer: r, n, a, e and ? are just letters
    page.keyboard.type("rnae?")
    assert body.input_value() == "rnae?"
    assert page.locator("#composer input[name=kind][value=note]").is_checked()
    assert not page.locator("#keys-help").is_visible()
    assert page.locator("details#assign").get_attribute("open") is None

    body.evaluate("el => el.blur()")
    page.keyboard.press("r")
    assert page.locator("#composer input[name=kind][value=reply]").is_checked()
    assert body.evaluate("el => el === document.activeElement")
    body.evaluate("el => el.blur()")

    page.keyboard.press("a")
    assert page.locator("details#assign").get_attribute("open") is not None
    assert page.locator("details#assign select").first.evaluate("el => el === document.activeElement")
    page.locator("details#assign select").first.evaluate("el => el.blur()")

    page.keyboard.press("e")
    assert page.locator("details#resolve").get_attribute("open") is not None
    assert page.locator("details#resolve textarea").first.evaluate("el => el === document.activeElement")
    page.locator("details#resolve textarea").first.evaluate("el => el.blur()")

    page.keyboard.press("?")
    dialog = page.locator("#keys-help")
    assert dialog.is_visible() and dialog.get_attribute("data-keys-page") == "ticket"
    assert dialog.locator("kbd", has_text="r").count() >= 1
    shot(page, "ticket-keys-help")
    page.locator("#keys-help-close").click()
    assert not dialog.is_visible()


def test_the_bulk_form_and_the_merge_work_from_the_browser(page, users, tickets):
    first, second, third = tickets
    sign_in(page, "agent")
    page.goto(reverse("servicedesk:queue"))
    page.locator(f"#select-{first.pk}").check()
    page.locator(f"#select-{second.pk}").check()
    page.locator("#bulk-actions summary").click()
    page.select_option("#id_bulk-action", "priority")
    page.select_option("#id_bulk-priority", "high")
    page.fill("#id_bulk-reason", "批量提高优先级")
    with page.expect_navigation():
        page.locator("#bulk button[type=submit]").click()
    assert page.locator("tr[data-outcome='done']").count() == 2

    page.goto(reverse("servicedesk:ticket", args=[third.pk]))
    page.locator("details#merge summary").click()
    page.fill("#id_merge-into", first.number)
    page.fill("#id_merge-reason", "同一问题")
    with page.expect_navigation():
        page.locator("details#merge button[type=submit]").click()
    assert page.url.split("#")[0].endswith(reverse("servicedesk:ticket", args=[first.pk]))
    assert page.locator("#links").get_by_text(third.number).first.is_visible()
