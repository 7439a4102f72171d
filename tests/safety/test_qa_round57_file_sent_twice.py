"""Session 57 (QA, duplicate submissions): a case's "Upload" sent twice (a double click, Back and send) kept the
photo or document twice in the case file. The form now carries a one-time token: the second sending keeps nothing
more and says so; a new form uploads again."""

from __future__ import annotations

import re

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from pharmacrm.safety.models import CaseFile

pytestmark = pytest.mark.django_db

PNG = (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00\x1f\x15\xc4\x89"
       b"\x00\x00\x00\rIDATx\x9cc\xf8\x0f\x00\x00\x01\x01\x00\x05\x18\xd8N\x00\x00\x00\x00IEND\xaeB`\x82")


def _token(page: str) -> str:
    form = page[page.index('id="file-form"'):]
    return re.search(r'name="form_token" value="([A-Za-z0-9_-]+)"', form).group(1)


def test_an_upload_sent_twice_keeps_one_file(client_for, make_case):
    case = make_case(kind="quality", reactions=[])
    pv = client_for("pv")
    token = _token(pv.get(reverse("safety:case", args=[case.pk])).content.decode())
    url = reverse("safety:case-file-upload", args=[case.pk])

    def send(**extra):
        return pv.post(url, {"files": SimpleUploadedFile("瓶子.png", PNG, content_type="image/png"),
                             "form_token": token}, **extra)  # fmt: skip

    assert send().status_code == 302
    again = send(HTTP_ACCEPT_LANGUAGE="en", follow=True)

    assert CaseFile.objects.filter(case=case).count() == 1
    assert "This form was already sent" in again.content.decode()
    token = _token(pv.get(reverse("safety:case", args=[case.pk])).content.decode())  # a new form: a new upload
    assert send().status_code == 302 and CaseFile.objects.filter(case=case).count() == 2
