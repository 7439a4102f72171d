"""Every export a page offers writes an audit entry (issue 2 §5: "every … export"), found in the URL configuration so
that a new export is covered: each download route of the web pages that takes no record (an Excel, CSV or PDF of a
list or report) is fetched by a role that may have it, and must answer 200, add one *export* entry by that user, and
forbid caching it.
The customer exports (`/customers/export/…`) and the downloads of one record (an agreement's PDF, a case's ICSR, a
survey campaign's answers) take an id and are not found here: each has its own test of its audit entry."""

from __future__ import annotations

import pytest
from django.urls import get_resolver

from pharmacrm.core.models import AuditEntry

pytestmark = pytest.mark.django_db

DOWNLOAD = ("export", ".xlsx", ".csv", ".pdf")
# who may have each; the first role that gets a 200 is the one checked
ROLES = ("admin", "manager", "analyst", "kam")


def _walk(patterns, prefix=""):
    for p in patterns:
        if hasattr(p, "url_patterns"):
            yield from _walk(p.url_patterns, prefix + str(p.pattern))
        else:
            yield prefix + str(p.pattern)


def downloads() -> list[str]:
    return sorted(
        "/" + route for route in _walk(get_resolver().url_patterns)
        if not route.startswith("api/") and "<" not in route and any(k in route for k in DOWNLOAD)
    )  # fmt: skip


def test_the_downloads_are_found():
    found = downloads()
    assert "/sales/clv/export.xlsx" in found and "/interactions/stage-tasks/export.xlsx" in found
    assert len(found) >= 12, found


@pytest.mark.parametrize("path", downloads())
def test_every_download_is_audited(client_for, users, path):
    for role in ROLES:
        before = AuditEntry.objects.filter(action=AuditEntry.Action.EXPORT).count()
        response = client_for(role).get(path, HTTP_ACCEPT_LANGUAGE="en")
        if response.status_code == 403:
            continue
        assert response.status_code == 200, (role, response.status_code)
        entries = AuditEntry.objects.filter(action=AuditEntry.Action.EXPORT).order_by("seq")[before:]
        if "attachment" not in response.get("Content-Disposition", ""):
            # nothing to export yet (no appraisal scheme): the page itself, and no entry
            assert response["Content-Type"].startswith("text/html") and not entries, path
            return
        assert [e.actor_id for e in entries] == [users[role].pk], f"{path} as {role}: no export entry"
        # what only its reader may see is kept by no shared proxy nor the browser's cache
        assert "no-store" in response["Cache-Control"], f"{path}: {response.get('Cache-Control')}"
        return
    pytest.fail(f"none of {ROLES} may download {path}")
