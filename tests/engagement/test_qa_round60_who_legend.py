"""The interaction form's first section, the institution and the person the rep met, was headed 操作人 ("operator",
the word the stage playbook uses for who does a task): its heading has a context of its own."""

from __future__ import annotations

import re

import pytest

pytestmark = pytest.mark.django_db


def test_the_interaction_forms_customer_section_is_not_headed_operator(client_for):
    client = client_for("rep")
    client.post("/i18n/setlang/", {"language": "zh-hans", "next": "/"})
    page = client.get("/interactions/new/").content.decode()
    legends = re.findall(r"<legend>([^<]*)</legend>", page)
    assert legends and "操作人" not in legends[0]
