"""A customer's licence block read "Missing or expired: Business licence (营业执照)、Drug trading licence (…)." on an
English page, and "缺少或已过期： 营业执照、药品经营许可证." (a space after the colon, an English full stop) on a
Chinese one; a licence's business scope was joined with 、 in English too. Each list takes the reader's separator
and each sentence its own language's punctuation."""

from __future__ import annotations

import pytest

from pharmacrm.customers import normalise
from pharmacrm.customers import services as customers
from pharmacrm.licences.models import Licence

pytestmark = pytest.mark.django_db


@pytest.fixture
def pharmacy(users, beijing, team_north):
    return customers.create_institution(users["admin"], {
        "name": "北京同仁堂朝阳药店", "kind": "pharmacy", "region": beijing, "owner": users["rep"], "team": team_north,
        "credit_code": normalise.make_credit_code("91110105MA0000000")})  # fmt: skip


def test_the_licence_block_lists_what_is_missing_with_the_readers_separator(client_for, pharmacy):
    block = client_for("rep").get(f"/licences/customer/{pharmacy.pk}/", HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert "Missing or expired: Business licence (营业执照), Drug trading licence (药品经营许可证).</p>" in block
    assert "、" not in block


def test_a_licences_business_scope_reads_in_english_with_commas(client_for, users, pharmacy):
    Licence.objects.create(institution=pharmacy, kind="drug_trading", number="京AA1234567", recorded_by=users["rep"],
                           scope=["patent_chinese", "chemical"])  # fmt: skip
    block = client_for("rep").get(f"/licences/customer/{pharmacy.pk}/", HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert "Chinese patent medicines (中成药), Chemical preparations (化学药制剂)" in block
