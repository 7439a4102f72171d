"""The evaluation fixes that touch the KOL import and the improvement-actions API: the same KOL count rule
as the form, and the customer of each action in the API."""

from __future__ import annotations

import datetime as dt

from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone

from pharmacrm.keyaccounts import evaluation
from pharmacrm.keyaccounts.choices import ModelKind
from pharmacrm.keyaccounts.models import MarketInfluence

from .eval_fixtures import *  # noqa: F403  (fixtures)
from .eval_fixtures import H1_2026

EN = {"HTTP_ACCEPT_LANGUAGE": "en"}
KOL_HEADER = "统一社会信用代码,客户外部编号,KOL人数,KOL姓名,市场影响力评分,备注\n"


def test_the_kol_import_applies_the_same_count_rule(client_for, purchases, users):
    evaluation.run(ModelKind.CANDIDATE, as_of=H1_2026)
    huashan, xiehe, changzheng = purchases["huashan"], purchases["xiehe"], purchases["changzheng"]
    body = (f"{huashan.credit_code},,99999,,,\n"
            f"{xiehe.credit_code},,1,王医生、李医生、张医生、赵医生、钱医生,,\n"
            f"{changzheng.credit_code},,,王医生；李医生,,\n")  # fmt: skip
    upload = SimpleUploadedFile("kols.csv", (KOL_HEADER + body).encode("utf-8-sig"), content_type="text/csv")
    response = client_for("analyst").post("/keyaccounts/candidates/kols/", {"file": upload}, **EN)

    assert response.status_code == 200
    errors = dict(response.context["import_errors"])
    assert errors == {
        2: "Give the number of key opinion leaders, from 0 to 500.",
        3: "5 names are listed: the number of key opinion leaders cannot be smaller.",
    }
    # the row without a number: counted from its names
    assert list(MarketInfluence.objects.values_list("institution_id", "kol_count")) == [(changzheng.pk, 2)]


def test_improvement_actions_say_which_customer_they_concern_and_filter_by_it(api_for, purchases, users):
    xiehe = purchases["xiehe"]
    evaluation.run(ModelKind.EVALUATION, as_of=H1_2026)  # 协和 in class D: an action for it
    api = api_for("manager")

    body = api.get("/api/v1/improvement-actions/").json()
    rows = body["results"] if isinstance(body, dict) else body
    assert [(r["customer"], r["customer_name"]) for r in rows] == [(xiehe.pk, "北京协和医院")]
    only = api.get(f"/api/v1/improvement-actions/?customer={xiehe.pk}").json()
    assert len(only["results"] if isinstance(only, dict) else only) == 1
    other = api.get(f"/api/v1/improvement-actions/?customer={purchases['huashan'].pk}").json()
    assert (other["results"] if isinstance(other, dict) else other) == []
    assert api.get("/api/v1/improvement-actions/?customer=abc").status_code == 400
    one = api.get(f"/api/v1/improvement-actions/{rows[0]['id']}/").json()
    assert (one["customer"], one["customer_name"]) == (xiehe.pk, "北京协和医院")
    assert one["due_date"] == (timezone.localdate() + dt.timedelta(days=evaluation.ACTION_DAYS)).isoformat()
