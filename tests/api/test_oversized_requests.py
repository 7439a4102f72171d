"""A request the API cannot take whole: a body over DATA_UPLOAD_MAX_MEMORY_SIZE, too many parameters."""

from __future__ import annotations

import json

import pytest

from pharmacrm.customers.models import Institution

pytestmark = pytest.mark.django_db


def test_a_body_over_the_limit_answers_413_saying_so(api_for, settings):
    """A JSON body of 11 MB (a scanned document pasted into `notes`) answered 400 "Malformed request.": the
    integrator looked for a fault in JSON that was valid. Nothing is created."""
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1024 * 1024
    body = json.dumps({"name": "北京协和医院", "kind": "hospital", "notes": "药" * 400_000})
    before = Institution.objects.count()

    response = api_for("admin").post("/api/v1/institutions/", body, content_type="application/json")

    assert response.status_code == 413
    assert response.json() == {"detail": "The request body is larger than the 1 MB the API accepts: send less "
                                         "at once, or upload long documents as files."}  # fmt: skip
    assert Institution.objects.count() == before


def test_too_many_parameters_answer_400_saying_so(api_for, settings):
    settings.DATA_UPLOAD_MAX_NUMBER_FIELDS = 100
    query = "&".join(f"tags={n}" for n in range(150))
    response = api_for("admin").get(f"/api/v1/institutions/?{query}")
    assert response.status_code == 400
    assert response.json() == {"detail": "The request has more parameters or form fields than the 100 the API "
                                         "accepts."}  # fmt: skip
