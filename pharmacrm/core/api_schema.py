"""OpenAPI schema helpers (apart from api_utils, which DRF's settings import while drf-spectacular's schema
module would import DRF's settings)."""

from __future__ import annotations

from drf_spectacular.extensions import OpenApiSerializerExtension, OpenApiSerializerFieldExtension
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.utils import OpenApiResponse

from .api_utils import TYPED_DATE_SCHEMA, TYPED_MOMENT_SCHEMA

# The responses the record APIs (market, licences, loyalty, cooperation) document in their @extend_schema; a
# 403's description says what the caller lacks, so each API keeps its own (`DENIED = OpenApiResponse(…)`).
ERRORS = OpenApiResponse(description="Per-field messages, in the reader's language, naming what is wrong.")
STALE = OpenApiResponse(
    description="Changed since the version you loaded; current_version says which it is now."
)
YUAN = "Yuan as a decimal string, two decimals at most."


class OneObjectSchema(AutoSchema):
    """The schema of a viewset whose list action answers one summary object (the supervisor board, the
    safety reconciliation), which drf-spectacular would otherwise document as an array of them."""

    def _is_list_view(self, serializer=None) -> bool:
        return False


class StrictRequestBodies(OpenApiSerializerExtension):
    """A request body built from the API's serializers (api_utils.StrictInputMixin) says
    `additionalProperties: false`: a field the endpoint does not know answers 400, and the schema did not say so,
    so a client generated from it (or a fuzzer) took any extra field for valid. Answers (the response components)
    are unchanged: they may gain fields. Query-string serializers (`refuse_unknown = False`) are not bodies.

    The fields the answer has (`id`, `created_at` …), which the API accepts and ignores so that a record read with
    GET can be sent back, are left out: a client sends them at its own risk of nothing."""

    target_class = "pharmacrm.core.api_utils.StrictInputMixin"
    match_subclasses = True

    def map_serializer(self, auto_schema, direction):
        schema = auto_schema._map_serializer(self.target, direction, bypass_extensions=True)
        # a serializer with nothing to send (every field read-only) makes no component: nothing to close
        if direction == "request" and self.target.refuse_unknown and schema.get("properties"):
            schema["additionalProperties"] = False
        return schema


class TypedNumbers(OpenApiSerializerFieldExtension):
    """A number read as typed (api_utils.TypedDecimalField, AmountField, PercentField) takes a JSON
    number or text ("¥1,234.50", "１，２３４．５", "35%"): the request says so, where DRF's decimal said a string of
    ASCII digits only (`format: decimal`) and a client validating against the schema refused what the API accepts.
    Answers are unchanged: a decimal string."""

    target_class = "pharmacrm.core.api_utils.TypedDecimalField"
    match_subclasses = True

    def map_serializer_field(self, auto_schema, direction):
        schema = auto_schema._map_serializer_field(self.target, direction, bypass_extensions=True)
        if direction != "request":
            return schema
        bounds = {key: schema[key] for key in ("minimum", "maximum") if key in schema}
        marks = "".join(f" {mark}" for mark in self.target.marks)
        description = "As typed: thousands separators, spaces, full-width digits" + (
            f" and{marks}" if marks else "") + " are read."  # fmt: skip
        example = "1,234.50"
        if "%" in self.target.marks:
            description, example = description[:-1] + " (30% is 30).", "12.5%"
        elif "¥" in self.target.marks:
            example = "¥1,234.50"
        return {
            "oneOf": [
                {"type": "number", **bounds},
                {"type": "string", "minLength": 1, "maxLength": 1000, "example": example, "description": description},
            ]
        }  # fmt: skip


class TypedWholeNumbers(OpenApiSerializerFieldExtension):
    """A whole number read as typed (api_utils.TypedIntegerField) takes a JSON integer or text ("1,000", "１０００"):
    the request says so (`oneOf` integer / string, with its bounds), where DRF's integer refused a string in a client
    validating against the schema. Answers are unchanged: an integer."""

    target_class = "pharmacrm.core.api_utils.TypedIntegerField"
    match_subclasses = True

    def map_serializer_field(self, auto_schema, direction):
        schema = auto_schema._map_serializer_field(self.target, direction, bypass_extensions=True)
        if direction != "request":
            return schema
        bounds = {key: schema[key] for key in ("minimum", "maximum") if key in schema}
        description = ("A whole number as typed: thousands separators, spaces and full-width digits are read "
                       "(\"1,000\", \"1 000\", \"１０００\"); \"1e3\" and \"1.5\" are refused.")  # fmt: skip
        typed = {"type": "string", "minLength": 1, "maxLength": 1000, "example": "1,000", "description": description}
        return {"oneOf": [{"type": "integer", **bounds}, typed]}


class _TypedText(OpenApiSerializerFieldExtension):
    """A date or a moment read as typed: in a request, a string of the forms `typed` describes (a pattern, a
    description and an example) instead of DRF's `format: date` / `format: date-time`, which a client validating
    against the schema took to refuse 2026/3/15 or 2026年3月15日 14时30分 — forms the API reads. Answers are unchanged
    (ISO 8601, `format: date` / `date-time`)."""

    typed: dict = {}

    def map_serializer_field(self, auto_schema, direction):
        schema = auto_schema._map_serializer_field(self.target, direction, bypass_extensions=True)
        if direction != "request":
            return schema
        return {**{k: v for k, v in schema.items() if k not in ("format", "pattern")}, **self.typed}


class TypedDates(_TypedText):
    target_class = "pharmacrm.core.api_utils.DateField"
    match_subclasses = True
    typed = TYPED_DATE_SCHEMA


class TypedMoments(_TypedText):
    target_class = "pharmacrm.core.api_utils.SafeDateTimeField"
    match_subclasses = True
    typed = TYPED_MOMENT_SCHEMA



_FIELD_ERRORS = {
    "type": "object",
    "description": "Per-field messages in the request's language: each field the request got wrong (a query "
    "parameter included) with its list of messages (a nested field's: per item or per sub-field); problems that "
    "are not about one field under `non_field_errors`; a request that could not be read at all has `detail`.",
    "properties": {
        "non_field_errors": {"type": "array", "items": {"type": "string"}},
        "detail": {"type": "string"},
    },
    "additionalProperties": {"oneOf": [{"type": "array"}, {"type": "object"}]},
}
_DETAIL = {
    "type": "object",
    "properties": {"detail": {"type": "string", "description": "What went wrong, in the request's language."}},
    "required": ["detail"],
}
_CONFLICT = {
    "type": "object",
    "properties": {
        "detail": {"type": "string"},
        "current_version": {"type": "integer", "description": "The record's version now (a stale version)."},
    },
    "required": ["detail"],
}
_STATUS_TEXT = {
    "400": "Per-field messages.", "401": "No, unknown or expired token.", "403": "The role may not do this.",
    "404": "No such record, or one outside the caller's scope.", "404-page": "A page past the last one.",
    "409-delete": "Not deleted: other records depend on it, or someone saved it after the If-Match version "
    "(`current_version`).",
    "409": "Someone saved the record since the version sent: nothing was changed (`current_version`).",
    "413": "The request body is larger than the API accepts.", "429": "Too many requests.",
    "409-idempotency": "A request with the same Idempotency-Key is still being processed: try again shortly.",
    "422": "The Idempotency-Key was used for another request (docs/api.md, \"Retries\").",
}  # fmt: skip
_IDEMPOTENCY_KEY = {
    "name": "Idempotency-Key", "in": "header", "required": False,
    "description": "Sent again with the same key, the POST is not run again: the answer is the first one, with "
    "`Idempotent-Replayed: true` (kept a day; docs/api.md, \"Retries\").",
    "schema": {"type": "string", "pattern": "^[!-~]{1,255}$", "minLength": 1, "maxLength": 255},
}  # fmt: skip


def _takes_version(result, operation) -> bool:
    """Whether the operation's JSON body has a `version` field (an optimistically locked record)."""
    schema = operation.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema", {})
    if "$ref" in schema:
        schema = result["components"]["schemas"].get(schema["$ref"].rsplit("/", 1)[-1], {})
    return "version" in schema.get("properties", {})


def document_errors(result, generator, request, public):
    """Every operation documents the error shape it can answer with (docs/api.md, "Errors"): a 400 with per-field
    messages, and `{"detail": …}` for the other refusals; and a POST's `Idempotency-Key` header with its 409 and 422. The schema documented a 400 on a quarter of the
    operations, always without a body, so a client generated from it could not read the messages it got."""
    components = result.setdefault("components", {}).setdefault("schemas", {})
    components["FieldErrors"] = _FIELD_ERRORS
    components["ErrorDetail"] = _DETAIL
    components["ConflictError"] = _CONFLICT
    ref = {name: {"$ref": f"#/components/schemas/{name}"} for name in ("FieldErrors", "ErrorDetail", "ConflictError")}
    for path, operations in result.get("paths", {}).items():
        for method, operation in operations.items():
            if method not in ("get", "post", "put", "patch", "delete"):
                continue
            responses = operation.setdefault("responses", {})
            signed_in = any(scheme for scheme in operation.get("security", []))
            paged = any(p.get("name") == "page" and p.get("in") == "query" for p in operation.get("parameters", []))
            wanted = ["400"] + (["401", "403"] if signed_in else [])
            wanted += ["404"] if "{" in path else ["404-page"] if paged else []  # a page past the last: 404
            if method in ("put", "patch") and _takes_version(result, operation):
                wanted.append("409")  # a stale version (docs/api.md, "Optimistic locking")
            if method == "delete" and "{" in path:
                wanted.append("409-delete")  # dependent records, or a stale If-Match
            if method == "post" and signed_in:  # core.idempotency: a retry with its key
                parameters = operation.setdefault("parameters", [])
                if not any(p.get("name") == "Idempotency-Key" for p in parameters):
                    parameters.append(dict(_IDEMPOTENCY_KEY))
                wanted += ["409-idempotency", "422"]
            for code in wanted:
                responses.setdefault(code[:3], {"description": _STATUS_TEXT[code]})
            for code, response in responses.items():
                if not code.startswith("4") or "$ref" in response or response.get("content"):
                    continue
                schema = ref["FieldErrors"] if code == "400" else ref["ConflictError"] if code == "409" else ref[
                    "ErrorDetail"]
                response["content"] = {"application/json": {"schema": schema}}
    return result
