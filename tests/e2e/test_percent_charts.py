"""The charts that label percentages (the service performance trend, the channel effect) share one formatter with the
pages (app.js, as core.numbers.percent_text writes them): in the browser both charts draw, without a script error,
and label a rate as the tables do — 66.7%, 12%, no space before the sign."""

import pytest

from tests.engagement.test_channel_effect import september  # noqa: F401  (fixture)
from tests.servicedesk.test_performance import desk, november  # noqa: F401  (fixtures)

from .conftest import sign_in

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def _drawn_without_errors(page, url: str, chart: str) -> None:
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(url)
    page.locator(f"#{chart}").locator("svg, canvas").first.wait_for()
    assert errors == []
    assert page.evaluate("[66.666, 12, 0.04, null].map(window.PharmaCRM.percent)") == ["66.7%", "12%", "0%", "—"]


def test_the_service_performance_chart_draws_and_labels_rates_as_the_table_does(page, users, november):  # noqa: F811
    sign_in(page, "manager")
    _drawn_without_errors(page, "/service/performance/?period=2026-11", "performance-chart")


def test_the_channel_effect_chart_draws_and_labels_conversion_as_the_table_does(page, users, september):  # noqa: F811
    sign_in(page, "manager")
    _drawn_without_errors(page, "/interactions/channels/?period=2026-09", "channels-chart")
