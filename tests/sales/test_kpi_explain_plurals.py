"""The appraisal's explanation of a component counted its answers, tasks, tickets and customers in the plural only:
an English reader saw "1 promoters, 0 detractors of 1 answers" next to the NPS figure, and "1 of 1 stage tasks",
"1 of 1 tickets", "1 customers". Each count now agrees with its noun."""

from __future__ import annotations

from django.utils import translation

from pharmacrm.sales import kpi


def test_the_nps_explanation_with_one_and_with_three_answers_in_english():
    with translation.override("en"):
        one = kpi.explain("nps", {"promoters": 1, "detractors": 0, "n": 1})
        three = kpi.explain("nps", {"promoters": 2, "detractors": 1, "n": 3})
    assert one == "1 answer: promoters 1, detractors 0"
    assert three == "3 answers: promoters 2, detractors 1"


def test_the_neighbouring_explanations_agree_with_their_count_in_english():
    with translation.override("en"):
        assert kpi.explain("follow_up", {"done": 1, "due": 1}) == "1 of 1 stage task done by its due day"
        assert kpi.explain("follow_up", {"done": 2, "due": 4}) == "2 of 4 stage tasks done by their due day"
        assert kpi.explain("teamwork", {"met": 1, "n": 1}) == "1 of 1 ticket resolved within SLA"
        assert kpi.explain("teamwork", {"met": 3, "n": 4}) == "3 of 4 tickets resolved within SLA"
        assert kpi.explain("new_customers", {"n": 1}) == "1 customer bought for the first time"
        assert kpi.explain("new_customers", {"n": 2}) == "2 customers bought for the first time"

