"""Session 17 review: the error message of a field in a prefixed form (several forms on one page) is the one its
input's aria-describedby names, so that a screen reader reads it with the field."""

from __future__ import annotations

import re

from django import forms
from django.template.loader import render_to_string


class Opinion(forms.Form):
    comment = forms.CharField(label="意见说明", help_text="反对时必填")


def test_every_id_a_prefixed_fields_input_points_to_is_on_the_page():
    form = Opinion(data={"review-comment": ""}, prefix="review")
    assert not form.is_valid()

    html = render_to_string("partials/field.html", {"field": form["comment"]})

    described = re.search(r'aria-describedby="([^"]+)"', html).group(1).split()
    assert "id_review-comment_error" in described
    for target in described:
        assert f'id="{target}"' in html, target
    errors = html.split('id="id_review-comment_error"')[1]
    assert "This field is required." in errors.split("</div>")[0] or "此项为必填项" in errors.split("</div>")[0]
