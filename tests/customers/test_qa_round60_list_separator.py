"""Lists in running text were joined with the Chinese enumeration comma 、 on English pages too (a hospital's
specialties, the loyalty programme's refusal for a hospital, the key-account pages): they take the reader's
separator, 、 in Chinese and ", " in English, as wording.listing does elsewhere."""

from __future__ import annotations

import pytest
from django.utils import translation

from pharmacrm.loyalty import services as loyalty

pytestmark = pytest.mark.django_db


def _page(client, language: str, url: str) -> str:
    client.post("/i18n/setlang/", {"language": language, "next": "/"})
    return client.get(url).content.decode()


def test_a_hospitals_specialties_read_with_the_readers_separator(client_for, xiehe):
    xiehe.specialties = ["心内科", "肿瘤科"]
    xiehe.save(update_fields=["specialties"])
    client = client_for("rep")
    english = _page(client, "en", f"/customers/institutions/{xiehe.pk}/")
    assert "心内科, 肿瘤科" in english and "心内科、肿瘤科" not in english
    assert "心内科、肿瘤科" in _page(client, "zh-hans", f"/customers/institutions/{xiehe.pk}/")


def test_the_loyalty_refusal_lists_the_commercial_types_in_english(xiehe):
    with translation.override("en"):
        message = loyalty.eligibility_error(xiehe)
    assert message is not None and "、" not in message
    assert "Pharmacy, " in message or ", Pharmacy" in message
    with translation.override("zh-hans"):
        assert "、" in loyalty.eligibility_error(xiehe)
