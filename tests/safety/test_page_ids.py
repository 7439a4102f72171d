"""The case page (and the ticket page, tests/servicedesk/test_page_ids.py) hold several forms at once (export, close, day 0; the ticket's status, reply,
note…): each used to render the same ids (id_reason, id_otp_code; id_form_token, id_version), so the second and third
labels pointed at the first form's inputs. No id appears twice, and every <label for> names an element there."""

from __future__ import annotations

from collections import Counter
from html.parser import HTMLParser

from django.urls import reverse


class _Ids(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.ids: Counter[str] = Counter()
        self.label_for: list[str] = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if attrs.get("id"):
            self.ids[attrs["id"]] += 1
        if tag == "label" and attrs.get("for"):
            self.label_for.append(attrs["for"])


def check_ids(response) -> None:
    assert response.status_code == 200
    parser = _Ids()
    parser.feed(response.content.decode())
    twice = sorted(i for i, n in parser.ids.items() if n > 1)
    assert twice == [], twice
    dangling = sorted(f for f in parser.label_for if f not in parser.ids)
    assert dangling == [], dangling


def test_the_case_page_has_each_id_once_and_every_label_points_at_one(client_for, make_case):
    case = make_case()
    page = client_for("pv").get(reverse("safety:case", args=[case.pk]))
    check_ids(page)
    body = page.content.decode()
    # the names the views read are unchanged
    assert body.count('name="otp_code"') >= 2 and body.count('name="reason"') >= 2

