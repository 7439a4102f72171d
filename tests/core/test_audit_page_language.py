"""The audit page in Chinese names what every export wrote, and the options it was made with, in Chinese: the
exports of no single record recorded their object and options as English codes ("service performance",
"group: agent", "sort: projected", "scope: all"), which the page showed as they were (found by the UI QA crawl).
Every download route is fetched, as in test_exports_audited, so that a new export is covered."""

from __future__ import annotations

import pytest

from pharmacrm.core.models import AuditEntry
from tests.core.test_exports_audited import ROLES, downloads
from tests.core.test_translations import english_left

pytestmark = pytest.mark.django_db
# names of things and formats the filter's list of record kinds uses in Chinese too
PRODUCT_WORDS = {"webhook", "capa", "icsr", "erp", "pdf"}


def _export_everything(client_for) -> int:
    done = 0
    for path in downloads():
        for role in ROLES:
            response = client_for(role).get(path)
            if response.status_code == 200:
                done += 1
                break
    return done


@pytest.mark.parametrize("language", ["zh-hans", "zh-hant"])
def test_the_exports_read_in_chinese_on_the_audit_page(client_for, language):
    assert _export_everything(client_for) >= 12
    exports = AuditEntry.objects.filter(action=AuditEntry.Action.EXPORT).count()
    client = client_for("auditor")
    client.post("/i18n/setlang/", {"language": language, "next": "/"})
    page = client.get("/accounts/audit/", {"action": "export"}).content.decode()
    assert f'<html lang="{language}">' in page
    assert page.count('<tr') >= min(exports, 20)
    assert english_left(page, also_allowed=PRODUCT_WORDS) == []


def test_the_options_of_an_export_read_in_chinese(client_for):
    client = client_for("admin")
    assert client.get("/service/performance/export.xlsx", {"group": "agent"}).status_code == 200
    assert client.get("/sales/clv/export.xlsx", {"sort": "historic"}).status_code == 200
    page = client_for("auditor").get("/accounts/audit/", {"action": "export"}).content.decode()
    for label in ("服务绩效", "分组方式", "客服专员", "客户生命周期价值", "排序方式", "累计回款"):
        assert label in page, label
    en = client_for("auditor").get("/accounts/audit/", {"action": "export"}, HTTP_ACCEPT_LANGUAGE="en")
    assert "Service performance" in en.content.decode() and "Paid to date" in en.content.decode()


def test_an_interim_evaluation_run_reads_in_chinese(client_for, users):
    """An evaluation run of a period still under way records that it is interim and which period stays in force:
    the page showed the bare keys "interim" and "in_force"."""
    from pharmacrm.core import audit

    audit.record(AuditEntry.Action.UPDATE, ("keyaccounts.evaluationrun", "1", "2026H2"), user=users["manager"],
                 evaluation="evaluation", period="2026H2", customers=188, interim=True, in_force="2026H1")  # fmt: skip
    page = client_for("auditor").get("/accounts/audit/").content.decode()
    assert "临时排名" in page and "现行" in page
    assert "interim" not in page and "in_force" not in page
