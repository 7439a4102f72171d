"""`Idempotency-Key` on the REST API's POSTs: a client that did not get the answer to a POST (a time-out, a dropped
connection, a mobile app resent from its outbox) sends it again with the same key and gets the first answer, instead
of creating a second ticket, adverse-event case or order — a second ICSR sent to the regulator for one patient.

- The key is the client's (any 1–255 visible ASCII characters; a UUID is the usual choice), scoped to the user who
  sent it (signed in, or by any of their API tokens). Another user's identical key is another request.
- The first request with a key is processed and its answer (status, content type, body) is kept IDEMPOTENCY_HOURS,
  encrypted. Not kept, so that the request runs again when retried: a server error (5xx), a refusal of who sent it
  (401, 403: not signed in, no second factor, no CSRF token) or of how often (429), and a streamed download.
- The same key with the same request again: that answer, with the header `Idempotent-Replayed: true`. Nothing runs
  again, nothing is audited again — except that an answer which showed personal data in clear is a read of it
  again, audited as one (naming the first request, whose entries name the records).
- The same key with another request (another path or body; a JSON body compared as data, whatever its key order or
  spacing, a multipart one — a file upload — whatever boundary its encoding chose): 422, nothing runs — a client bug
  that reused a key.
- The same key while the first is still being processed (two retries in parallel): 409; try again shortly. A
  first request whose process died before answering is taken as abandoned after STALE_AFTER.
- Without the header nothing changes; nor with it on a body over DATA_UPLOAD_MAX_MEMORY_SIZE (10 MB: an import's
  file), which is not read into memory to be compared."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re

from django.conf import settings
from django.db import IntegrityError, transaction
from django.http import HttpResponse, JsonResponse
from django.utils import timezone
from django.utils.translation import gettext as _

from . import audit, crypto

HEADER = "Idempotency-Key"
IDEMPOTENCY_HOURS = 24
STALE_AFTER = dt.timedelta(minutes=15)  # longer than any request may run (the web server's time-out is shorter)
MAX_KEPT_BODY = 1024 * 1024  # a bigger answer is not kept (the request is then not idempotent; see the docs)
NOT_KEPT = frozenset({401, 403, 429})  # refusals of the sender, not answers to the request
_KEY = re.compile(r"[\x21-\x7e]{1,255}")
API_PREFIX = "/api/"


def _identity(request) -> tuple[str | None, int | None]:
    """Who sent it, and their user id when known: the session's user, else the API token's user, else the
    Authorization header as a digest; None: nobody we can tell apart."""
    user = getattr(request, "user", None)
    if user is not None and user.is_authenticated:
        return f"user:{user.pk}", user.pk
    auth = request.headers.get("Authorization", "")
    if not auth:
        return None, None
    keyword, _sep, key = auth.partition(" ")
    if keyword == "Token" and key.strip():  # the token's user: a client that took a new token keeps its keys
        from .models import ApiToken

        user_id = ApiToken.objects.filter(key_hash=ApiToken.hash_key(key.strip())).values_list("user_id", flat=True)
        if user_id:
            return f"user:{user_id[0]}", user_id[0]
    return "auth:" + hashlib.sha256(auth.encode()).hexdigest(), None


def _too_big(request) -> bool:
    """A body larger than DATA_UPLOAD_MAX_MEMORY_SIZE (an import's file) is not read into memory to be fingerprinted:
    such a request is not covered by its key, and runs as if it had none."""
    try:
        length = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return True
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    return limit is not None and length > limit


def _fingerprint(request) -> str:
    digest = hashlib.sha256()
    for part in (request.method, request.get_full_path(), request.content_type or ""):
        digest.update(part.encode() + b"\x00")
    digest.update(_body_as_sent(request))
    return digest.hexdigest()


def _body_as_sent(request) -> bytes:
    """The body compared: a JSON body as the data it holds, so that a retry serialised again — its keys in another
    order, other spacing or escapes (an app's outbox re-encoding the stored object) — is the same request, replayed,
    not refused as another one (422). A multipart body (a file upload: an ICSR, an attachment) without its boundary,
    which the client's HTTP library draws anew for each encoding — a retry's parts are those of the first. Anything
    else, or JSON that does not parse, byte for byte."""
    body = request.body
    content_type = (request.content_type or "").lower()
    if content_type == "multipart/form-data":
        boundary = (request.content_params or {}).get("boundary", "")
        # the delimiters are "--" + boundary (RFC 2046), a string the parts may not hold: each one the same marker
        return body.replace(b"--" + boundary.encode("latin-1", "replace"), b"--boundary") if boundary else body
    if content_type != "application/json":
        return body
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):
        return body
    return json.dumps(data, sort_keys=True, separators=(",", ":")).encode()  # ASCII: a lone surrogate is kept


def _error(status: int, message: str) -> JsonResponse:
    return JsonResponse({"detail": message}, status=status, json_dumps_params={"ensure_ascii": False})


def _replay(row, user_id: int | None) -> HttpResponse:
    """The kept answer again. One that showed personal data in clear is a read of it again: audited as such, naming
    the first request (whose entries name the records), and not kept by the browser (RequestIdMiddleware)."""
    if row.personal:
        from django.contrib.auth import get_user_model

        from .models import AuditEntry

        user = get_user_model().objects.filter(pk=user_id).first() if user_id is not None else None
        audit.record(AuditEntry.Action.READ_PERSONAL, row, user=user, replayed_request=row.request_id,
                     purpose="idempotent replay")  # fmt: skip
    response = HttpResponse(row.body.encode(), status=row.status_code, content_type=row.content_type or None)
    response["Idempotent-Replayed"] = "true"
    return response


class IdempotencyMiddleware:
    """Applies `Idempotency-Key` to POSTs under /api/ (see the module's docstring)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        key = request.headers.get(HEADER)
        if key is None or request.method != "POST" or not request.path.startswith(API_PREFIX):
            return self.get_response(request)
        if not _KEY.fullmatch(key):
            return _error(400, _("The Idempotency-Key header must be 1 to 255 visible ASCII characters."))
        identity, user_id = _identity(request)
        if identity is None or _too_big(request):
            return self.get_response(request)
        from .models import IdempotentRequest

        scope = crypto.blind_index(f"{identity}\x00{key}", "idempotency-key")
        fingerprint = _fingerprint(request)
        now = timezone.now()
        try:
            with transaction.atomic():
                row = IdempotentRequest.objects.create(scope=scope, fingerprint=fingerprint, body="", created_at=now)
        except IntegrityError:
            earlier = IdempotentRequest.objects.filter(scope=scope).first()
            if earlier is None:  # expired and purged in between: the client may simply send it again
                return _error(409, _("A request with this Idempotency-Key is being processed; try again shortly."))
            expired = earlier.created_at < now - dt.timedelta(hours=IDEMPOTENCY_HOURS)
            abandoned = not earlier.done and earlier.created_at < now - STALE_AFTER
            if not (expired or abandoned):
                if earlier.fingerprint != fingerprint:
                    return _error(422, _("This Idempotency-Key was used for another request: use a new key for a new "
                                         "request."))  # fmt: skip
                if not earlier.done:
                    return _error(409, _("A request with this Idempotency-Key is being processed; try again "
                                         "shortly."))  # fmt: skip
                return _replay(earlier, user_id)
            # taken over: a day old, or its process died before answering
            claimed = IdempotentRequest.objects.filter(pk=earlier.pk, created_at=earlier.created_at).update(
                fingerprint=fingerprint, done=False, status_code=None, content_type="", body="", created_at=now
            )
            if not claimed:
                return _error(409, _("A request with this Idempotency-Key is being processed; try again shortly."))
            row = IdempotentRequest.objects.get(pk=earlier.pk)
        try:
            response = self.get_response(request)
        except BaseException:
            IdempotentRequest.objects.filter(pk=row.pk).delete()
            raise
        self._keep(row, request, response)
        return response

    @staticmethod
    def _keep(row, request, response) -> None:
        from .models import IdempotentRequest

        body = None
        if response.status_code < 500 and response.status_code not in NOT_KEPT and not response.streaming:
            if hasattr(response, "render") and not getattr(response, "is_rendered", True):
                response.render()
            if len(response.content) <= MAX_KEPT_BODY:
                try:
                    body = response.content.decode()
                except UnicodeDecodeError:
                    body = None
        if body is None:  # not kept: the key may be used again, and the request runs again
            IdempotentRequest.objects.filter(pk=row.pk).delete()
            return
        row.done, row.status_code, row.body = True, response.status_code, body
        row.content_type = response.get("Content-Type", "")[:200]
        row.personal = bool(getattr(getattr(request, "audit_context", None), "not_to_keep", False))
        row.request_id = str(getattr(request, "request_id", ""))[:64]
        row.save(update_fields=["done", "status_code", "body", "content_type", "personal", "request_id"])


def purge(now: dt.datetime | None = None) -> int:
    """Forget the keys older than IDEMPOTENCY_HOURS (the worker's daily `purge_idempotency_keys`)."""
    from .models import IdempotentRequest

    cutoff = (now or timezone.now()) - dt.timedelta(hours=IDEMPOTENCY_HOURS)
    return IdempotentRequest.objects.filter(created_at__lt=cutoff).delete()[0]

