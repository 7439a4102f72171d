"""A quality review in a real Chromium, in Chinese: the product expert opens the quality page, draws a random
handled ticket, marks the answer inaccurate, is told to write the findings, writes them and sees the review on the
ticket; the agent who handled it is told in the bell, and the quality page shows the agent's accuracy."""

import pytest
from django.urls import reverse

from pharmacrm.notify.models import Notification
from pharmacrm.servicedesk import services
from pharmacrm.servicedesk.choices import Status
from pharmacrm.servicedesk.models import QualityReview

from .conftest import shot, sign_in

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def handled(users, xiehe):
    ticket = services.create_ticket(users["agent"], {
        "subject": "咨询储存条件", "channel": "phone", "category": "drug_info", "institution": xiehe,
        "assignee": users["agent"],
    })  # fmt: skip
    services.record_response(users["agent"], ticket)
    services.transition(users["agent"], ticket, Status.RESOLVED, resolution_summary="已告知常温保存。",
                        root_cause="information")  # fmt: skip
    return ticket


def test_the_expert_reviews_a_random_ticket_and_the_agent_is_told(page, users, handled):
    sign_in(page, "expert")
    page.goto(reverse("servicedesk:quality"))
    assert page.locator("h1").inner_text().startswith("服务质检")
    with page.expect_navigation():
        page.locator("#review-next").click()
    assert page.url.endswith(reverse("servicedesk:ticket", args=[handled.pk]) + "#quality")
    panel = page.locator("#quality")
    panel.get_by_role("group", name="答复准确").get_by_label("否").check()
    for name in ("合规", "记录完整", "服务规范"):
        panel.get_by_role("group", name=name).get_by_label("是").check()
    with page.expect_navigation():
        page.locator("#quality-submit").click()
    # a criterion not met without the findings: refused, the choices kept, the reason under the field
    assert "请写明质检发现" in page.locator("#field-quality-comment").inner_text()
    assert page.locator("#quality").get_by_role("group", name="答复准确").get_by_label("否").is_checked()
    assert not QualityReview.objects.exists()
    page.locator("#id_quality-comment").fill("储存条件答复有误：本品应2–8℃冷藏。")
    with page.expect_navigation():
        page.locator("#quality-submit").click()
    result = page.locator("#quality-result")
    assert "✗ 答复准确" in result.inner_text() and "✓ 合规" in result.inner_text()
    assert "2–8℃" in page.locator("#quality-comment").inner_text()
    shot(page, "quality-review")
    note = Notification.objects.get(recipient=users["agent"], kind="quality.finding")
    assert handled.number in note.title
    # the page counts the agent's handled ticket as reviewed, its answer not accurate
    page.goto(reverse("servicedesk:quality"))
    row = page.locator(f"#quality-agents tr[data-agent='{users['agent'].pk}']")
    assert row.locator("td[data-criterion='accurate']").inner_text() == "0%"
    assert row.locator("td").nth(2).inner_text() == "100%"  # coverage: 1 of 1


def test_the_performance_chart_draws_the_accuracy_on_the_percentage_scale(page, users, handled):
    """The trend chart of the service performance page (ECharts, in the browser): the accuracy is a fifth line on
    the resolution rate's 0–100 scale, ending on this month's figure."""
    from pharmacrm.servicedesk import quality

    quality.review(users["expert"], handled, {"accurate": False, "compliant": True, "complete": True,
                                              "courteous": True, "comment": "储存条件答复有误。"})  # fmt: skip
    sign_in(page, "manager")
    page.goto(reverse("servicedesk:performance"))
    page.locator("#performance-chart svg").wait_for()
    option = page.evaluate("""() => {
        const o = echarts.getInstanceByDom(document.getElementById("performance-chart")).getOption();
        return {axes: o.yAxis.map(a => [a.min ?? null, a.max ?? null]),
                series: o.series.map(s => [s.name, s.yAxisIndex, s.data[s.data.length - 1]])};
    }""")
    assert option["axes"] == [[0, None], [0, 100], [1, 5], [-100, 100]]
    assert [s[:2] for s in option["series"]] == [["工单", 0], ["解决率（%）", 1], ["满意度（1–5）", 2],
                                                  ["净推荐值", 3], ["准确率（%）", 1]]  # fmt: skip
    assert option["series"][4][2] == 0  # this month: the one ticket reviewed, its answer not accurate
    assert "准确率（%）" in page.locator("#performance-chart").inner_text()  # in the legend
    page.locator("#trend-title").scroll_into_view_if_needed()
    shot(page, "performance-trend-accuracy")
