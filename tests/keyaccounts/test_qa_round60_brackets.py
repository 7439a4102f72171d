"""A key account's evaluation read 满意度 4.33 (6 份调查问卷) and 投诉 2 (已解决 2 件): English half-width brackets
and spaces inside a Chinese page. A remark after a value is bracketed as the page's language writes it: （…） with
no space in Chinese, " (…)" in English."""

from __future__ import annotations

import datetime as dt

import pytest
from django.urls import reverse
from django.utils import timezone

from pharmacrm.keyaccounts import services
from pharmacrm.keyaccounts.models import KeyAccount

from .programme_fixtures import *  # noqa: F403  (fixtures)

pytestmark = pytest.mark.django_db


def test_an_evaluations_remarks_are_bracketed_as_the_page_language_writes_them(client_for, xiehe, with_plan):
    account, _plan = with_plan(xiehe)
    KeyAccount.objects.filter(pk=account.pk).update(listed_at=timezone.now() - dt.timedelta(days=400))
    services.review_account(KeyAccount.objects.get(pk=account.pk), services.previous_quarter(timezone.localdate()))
    url = reverse("keyaccounts:account", args=[account.pk])
    client = client_for("manager")
    english = client.get(url, HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert "0 (0 resolved)" in english and "> (0 surveys)</span>" in english
    client.post("/i18n/setlang/", {"language": "zh-hans", "next": "/"})
    chinese = client.get(url).content.decode().split('id="evaluations"')[1].split("</section>")[0]
    assert "0（已解决 0 件）" in chinese and "（0 份调查问卷）" in chinese
    assert "(已解决" not in chinese and "(0 份" not in chinese
