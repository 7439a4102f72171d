"""Defects of the evaluation pages found in review: the scoring models' version history spoke in the measures'
JSON keys, and the model form named a wrong reference value by its key instead of at its field."""

from __future__ import annotations

import re

import pytest

from pharmacrm.keyaccounts.models import ScoringModel
from tests.core.test_translations import english_left

from .test_evaluation_pages import EN, _model_post, text

pytestmark = pytest.mark.django_db


def test_the_version_history_names_measures_and_thresholds_in_the_readers_language(client_for, users):
    c = client_for("manager")
    c.get("/keyaccounts/models/evaluation/")  # version 1 of each kind
    assert c.post("/keyaccounts/models/evaluation/", _model_post(name="客户评估")).status_code == 302

    page = c.get("/keyaccounts/models/").content.decode()

    assert english_left(page, {"KOL"}) == []  # was "amount 35 · frequency 20 …", "candidate 70"
    history = text(c.get("/keyaccounts/models/", **EN)).split("Version history")[1]
    assert "Purchase amount 40 · Purchase frequency 20" in history
    assert "Class A from 85 · Class B from 60 · Class C from 40" in history
    assert "Candidate from 70" in history


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("param_amount_reference", "-5", "Amount reference (yuan) must be a number above zero."),
        ("param_orders_reference", "0", "Orders reference must be a number above zero."),
        ("param_default_credit", "500", "Credit without payment history must be a score from 0 to 100."),
    ],
)
def test_a_wrong_reference_value_is_named_by_its_label_at_its_field(client_for, users, field, value, message):
    c = client_for("analyst")
    c.get("/keyaccounts/models/evaluation/")

    response = c.post("/keyaccounts/models/evaluation/", _model_post(**{field: value}), **EN)

    assert response.status_code == 400
    assert response.context["form"].errors[field] == [message]
    key = field.removeprefix("param_")
    assert not re.search(rf"\b{key}\b", text(response))  # not "amount_reference must be …"
    assert ScoringModel.objects.filter(kind="evaluation").count() == 1
    zh = c.post("/keyaccounts/models/evaluation/", _model_post(**{field: value}))
    assert english_left(zh.content.decode(), {"KOL"}) == []


def test_the_model_saved_twice_makes_one_version_and_the_second_says_it_is_in_force(client_for, users):
    """A double click on Save: the second sending carried the version the page was loaded with, one behind the
    first's new one, and was answered with the stale conflict (409); the form now carries a one-time token and the
    second sending says which version is in force. Another page loaded before a colleague's save is still stale."""
    from pharmacrm.customers.forms import new_once_token

    c = client_for("manager")
    c.get("/keyaccounts/models/evaluation/")  # version 1 of each kind
    assert 'name="form_token"' in c.get("/keyaccounts/models/evaluation/").content.decode()
    sent = _model_post(name="客户评估", form_token=new_once_token())

    assert c.post("/keyaccounts/models/evaluation/", sent).status_code == 302
    again = c.post("/keyaccounts/models/evaluation/", sent, follow=True, **EN)

    assert again.status_code == 200 and [str(m) for m in again.context["messages"]][-1] == (
        "Version 2 of the model is in force; it counts from the next run.")
    assert ScoringModel.objects.filter(kind="evaluation").count() == 2
    stale = c.post("/keyaccounts/models/evaluation/", _model_post(name="另一个", form_token=new_once_token()), **EN)
    assert stale.status_code == 409 and ScoringModel.objects.filter(kind="evaluation").count() == 2
