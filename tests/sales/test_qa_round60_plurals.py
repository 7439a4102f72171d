"""A rep's appraisal explained the new-customers component with "1 customers bought for the first time"."""

from __future__ import annotations

from django.utils import translation

from pharmacrm.sales import kpi


def test_one_new_customer_is_said_in_the_singular():
    with translation.override("en"):
        assert kpi.explain("new_customers", {"n": 1}) == "1 customer bought for the first time"
        assert kpi.explain("new_customers", {"n": 3}) == "3 customers bought for the first time"
        assert kpi.explain("new_customers", {"n": 0}) == "0 customers bought for the first time"
