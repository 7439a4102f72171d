"""The audit trail: record an entry (hash-chained, append-only) and verify the chain."""

from __future__ import annotations

import contextvars
import datetime
import decimal
import functools
import hashlib
import json
import unicodedata
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from django.db import IntegrityError, connection, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from .models import AuditChainHead, AuditEntry
from .pipeline import alongside

GENESIS = "0" * 64


@dataclass
class RequestContext:
    """Who is acting and from where: set per request (middleware) or per command/task."""

    user: Any = None
    request_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    ip: str | None = None
    implicit: bool = False  # made by current() for code that set none: a worker task replaces it with its own
    # the request showed personal data or handed out an export (a read_personal or export entry was recorded): its
    # answer is not to be kept by the browser or a proxy (core.middleware.RequestIdMiddleware)
    not_to_keep: bool = False


# what a request records when its answer holds personal data (in clear, or an export's rows)
NOT_TO_KEEP = frozenset({AuditEntry.Action.READ_PERSONAL, AuditEntry.Action.EXPORT})


_context: contextvars.ContextVar[RequestContext | None] = contextvars.ContextVar("audit_context", default=None)


def current() -> RequestContext:
    ctx = _context.get()
    if ctx is None:
        ctx = RequestContext(implicit=True)
        _context.set(ctx)
    return ctx


def begin_task(task_id: str) -> contextvars.Token | None:
    """A worker task's own context: its entries share the task's id as their request id, and no other
    task's (a worker thread runs one task after another). Inside a request or a command that runs the task
    at once (Huey's immediate mode) the caller's context stays."""
    ctx = _context.get()
    if ctx is not None and not ctx.implicit:
        return None
    return _context.set(RequestContext(request_id=task_id.replace("-", "")))


def set_context(ctx: RequestContext | None) -> contextvars.Token:
    return _context.set(ctx)


def reset_context(token: contextvars.Token) -> None:
    _context.reset(token)


def _jsonable(value: Any) -> Any:
    if isinstance(value, (datetime.datetime, datetime.date, datetime.time)):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_jsonable(v) for v in value]
    if hasattr(value, "pk"):
        return value.pk
    return value


def _digest(prev_hash: str, e: AuditEntry) -> str:
    return _digest_fields(prev_hash, {
        "seq": e.seq, "at": _hashed_time(e.at), "actor": e.actor_id, "actor_name": e.actor_name,
        "action": e.action, "object_type": e.object_type, "object_id": e.object_id, "object_repr": e.object_repr,
        "changes": e.changes, "extra": e.extra, "request_id": e.request_id, "ip": e.ip,
    })  # fmt: skip


def _hashed_time(at: datetime.datetime) -> str:
    return at.astimezone(datetime.UTC).isoformat(timespec="microseconds")


def _digest_fields(prev_hash: str, fields: dict) -> str:
    body = json.dumps(fields, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256((prev_hash + body).encode()).hexdigest()


def _batch_digester(fixed: dict) -> Callable[[str, int, str, str, str, Any], str]:
    """`_digest_fields` for entries that share every field but seq, object_type/id/repr and changes (a batch of
    `record_many`): the same digest, with the shared fields serialised once — the keys in the sorted order
    json.dumps(sort_keys=True) writes them, so the body is byte for byte the same (tested)."""
    dump = json.JSONEncoder(sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode  # json.dumps's, built once
    if set(fixed) != {"action", "actor", "actor_name", "at", "extra", "ip", "request_id"}:
        raise ValueError("the fields of an audit entry changed: update _batch_digester")
    head = (f'{{"action":{dump(fixed["action"])},"actor":{dump(fixed["actor"])},'
            f'"actor_name":{dump(fixed["actor_name"])},"at":{dump(fixed["at"])},"changes":')  # fmt: skip
    middle = f',"extra":{dump(fixed["extra"])},"ip":{dump(fixed["ip"])},"object_id":'
    request_id = f',"request_id":{dump(fixed["request_id"])},"seq":'
    sha256 = hashlib.sha256

    def digest(prev_hash: str, seq: int, object_type: str, object_id: str, object_repr: str, changes: Any) -> str:
        body = (f'{prev_hash}{head}{dump(changes)}{middle}{dump(object_id)},"object_repr":{dump(object_repr)},'
                f'"object_type":{dump(object_type)}{request_id}{int(seq)}}}')  # fmt: skip (an int: json writes its repr)
        return sha256(body.encode()).hexdigest()

    return digest


# the lengths texts were cut at, without a mark, in the entries written before every cut ended in "…" (`cut`): a
# record's name (object_repr) and a label at 200 characters, a paused survey campaign's reason at 300, the reason of
# a reveal at 500, an acknowledgement's error at 1000. A value of exactly that length may end in a number or an address
# cut mid-way (…请回电 1391234), which the readers who see personal data masked read masked by the cut rule
# (personal.audit_text)
CUT_LENGTHS = frozenset({60, 200, 300, 500, 1000})  # 60: a CAPA action named its entries, cut without "…" before
NAME_LENGTH = 200  # AuditEntry.object_repr's


def cut(text: str | None, limit: int) -> str:
    """`text` as an entry keeps it: at most `limit` characters, and when it is longer, cut with "…" as its last one
    (请回电 1391234…), so that a number or an e-mail address cut there is masked by the cut rule for the readers who
    see personal data masked (personal.free_text) — without the mark 1391234 reads as a whole number's start."""
    text = text or ""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def object_label(obj: Any) -> tuple[str, str, str]:
    if obj is None:
        return "", "", ""
    if isinstance(obj, tuple):  # (type, id, repr) given directly
        return obj[0], obj[1], cut(obj[2], NAME_LENGTH) if isinstance(obj[2], str) else obj[2]
    return obj._meta.label_lower, str(obj.pk), cut(str(obj), NAME_LENGTH)


def diff(before: dict, after: dict) -> dict:
    """{field: [before, after]} for the fields whose value changed."""
    keys = set(before) | set(after)
    return {
        k: [_jsonable(before.get(k)), _jsonable(after.get(k))]
        for k in sorted(keys)
        if _jsonable(before.get(k)) != _jsonable(after.get(k))
    }


_SQL: dict[str, dict[str, str]] = {}  # per database vendor: the statements every entry runs


def _sql() -> dict[str, str]:
    """The chain head's locking read and its move, and an entry's insert, as SQL: every change of every service
    writes an entry, and building these three queries through the ORM was about half of an entry's cost."""
    found = _SQL.get(connection.vendor)
    if found is None:
        qn = connection.ops.quote_name
        head, table = qn(AuditChainHead._meta.db_table), qn(AuditEntry._meta.db_table)
        lock = " FOR UPDATE" if connection.features.has_select_for_update else ""
        columns = ", ".join(qn(f.column) for f in _entry_fields())
        returning = " RETURNING id" if connection.features.can_return_columns_from_insert else ""
        found = _SQL[connection.vendor] = {
            "head": f"SELECT seq, hash FROM {head} WHERE id = 1{lock}",
            "move": f"UPDATE {head} SET seq = %s, hash = %s WHERE id = 1",
            "insert": f"INSERT INTO {table} ({columns}) VALUES ({', '.join(['%s'] * len(_entry_fields()))}){returning}",
        }
    return found


@functools.cache
def _entry_fields() -> list:
    by_column = {f.column: f for f in AuditEntry._meta.concrete_fields}
    return [by_column[name] for name in BULK_COLUMNS]


def _locked_head() -> AuditChainHead:
    """The chain's head, locked for the rest of the transaction. Migration core 0010 creates it; on a database
    emptied since (a flushed test database) the first entry does, and of two first entries at once the second,
    whose insert fails on the first one's head, locks that head and chains after it."""
    select = _sql()["head"]
    with connection.cursor() as cursor:
        cursor.execute(select)
        row = cursor.fetchone()
    if row is None:
        try:
            with transaction.atomic():  # a savepoint, so that the caller's transaction survives the duplicate
                AuditChainHead.objects.create(pk=1, seq=0, hash=GENESIS)
        except IntegrityError:
            pass
        with connection.cursor() as cursor:
            cursor.execute(select)
            row = cursor.fetchone()
    return AuditChainHead(pk=1, seq=row[0], hash=row[1])


def _move_head(seq: int, digest: str) -> None:
    with connection.cursor() as cursor:
        cursor.execute(_sql()["move"], [seq, digest])


def _insert_entry(entry: AuditEntry) -> None:
    """One entry, inserted as the ORM inserts it (each value prepared by its field) from a statement built once;
    the entry's id set from the insert."""
    values = [f.get_db_prep_save(getattr(entry, f.attname), connection) for f in _entry_fields()]
    with connection.cursor() as cursor:
        cursor.execute(_sql()["insert"], values)
        entry.pk = cursor.fetchone()[0] if connection.features.can_return_columns_from_insert else cursor.lastrowid
    entry._state.adding = False
    entry._state.db = connection.alias


def record(action: str, obj: Any = None, *, changes: dict | None = None, user: Any = None, **extra) -> AuditEntry:
    """Append one entry to the chain, inside the caller's transaction when there is one."""
    ctx = current()
    if action in NOT_TO_KEEP:
        ctx.not_to_keep = True
    actor = user if user is not None else ctx.user
    if actor is not None and not getattr(actor, "is_authenticated", False):
        if isinstance(getattr(actor, "name", None), str):  # a named system actor (mail poller, web form)
            extra.setdefault("actor_name", actor.name)
        actor = None
    object_type, object_id, object_repr = object_label(obj)
    # no savepoint inside the caller's transaction (two round trips fewer per change): a failure here fails
    # the whole change, which is what an audit trail needs anyway
    with transaction.atomic(savepoint=False):
        head = _locked_head()
        entry = AuditEntry(
            seq=head.seq + 1,
            at=timezone.now(),
            actor=actor,
            actor_name=(actor.get_username() if actor is not None else extra.pop("actor_name", "")),
            action=action,
            object_type=object_type,
            object_id=object_id,
            object_repr=object_repr,
            changes=_jsonable(changes or {}),
            extra=_jsonable(extra),
            request_id=ctx.request_id,
            ip=ctx.ip,
            prev_hash=head.hash,
        )
        entry.hash = _digest(head.hash, entry)
        _insert_entry(entry)
        _move_head(entry.seq, entry.hash)
    return entry


def record_many(
    action: str, items: list[tuple[Any, dict]], *, user: Any = None, during: Callable[[], object] | None = None, **extra
) -> int:
    """Append one entry per (object, changes) pair — for a run that changes many records at once (an
    evaluation's tier changes): the chain head is locked once and the entries go in with one bulk insert,
    each still hash-chained to the one before. `during`: the database work the entries record (the changes
    themselves), run in the same transaction once the head is locked while a second thread hashes the
    entries — give the objects as (type, id, name) labels then, which name them without a query. Returns how
    many entries."""
    if not items:
        if during is not None:
            during()
        return 0
    ctx = current()
    if action in NOT_TO_KEEP:
        ctx.not_to_keep = True
    actor = user if user is not None else ctx.user
    if actor is not None and not getattr(actor, "is_authenticated", False):
        if isinstance(getattr(actor, "name", None), str):
            extra.setdefault("actor_name", actor.name)
        actor = None
    actor_name = actor.get_username() if actor is not None else extra.pop("actor_name", "")
    extra = _jsonable(extra)
    # rows straight to the table (COPY on PostgreSQL): no model instance per entry; the hash is computed
    # from the same fields `verify` reads back
    from pharmacrm.customers.importer import insert_rows

    actor_id = actor.pk if actor is not None else None
    ip = ctx.ip or None
    sqlite = connection.vendor == "sqlite"
    with transaction.atomic(savepoint=False):
        head = _locked_head()
        now = timezone.now()
        at_hashed = _hashed_time(now)
        at_stored = connection.ops.adapt_datetimefield_value(now) if sqlite else now
        extra_text = json.dumps(extra, ensure_ascii=False)

        def chained() -> list[tuple]:
            seq, prev, rows = head.seq, head.hash, []
            digest_of = _batch_digester({
                "at": at_hashed, "actor": actor_id, "actor_name": actor_name, "action": action, "extra": extra,
                "request_id": ctx.request_id, "ip": ip,
            })  # fmt: skip
            for obj, changes in items:
                object_type, object_id, object_repr = object_label(obj)
                changes = _jsonable(changes or {})
                seq += 1
                digest = digest_of(prev, seq, object_type, object_id, object_repr, changes)
                rows.append((
                    seq, at_stored, actor_id, actor_name, action, object_type, object_id, object_repr,
                    json.dumps(changes, ensure_ascii=False), extra_text, ctx.request_id, ip, prev, digest,
                ))  # fmt: skip
                prev = digest
            return rows

        rows = chained() if during is None else alongside(chained, during)
        insert_rows(AuditEntry._meta.db_table, BULK_COLUMNS, rows)
        _move_head(rows[-1][0], rows[-1][-1])
    return len(rows)


BULK_COLUMNS = [
    "seq", "at", "actor_id", "actor_name", "action", "object_type", "object_id", "object_repr", "changes", "extra",
    "request_id", "ip", "prev_hash", "hash",
]  # fmt: skip


@dataclass
class VerifyResult:
    checked: int
    problems: list[str]
    last_seq: int = 0  # the last entry checked, and its hash: what the operator keeps outside the database
    last_hash: str = ""

    @property
    def ok(self) -> bool:
        return not self.problems


def verify(batch: int = 5000) -> VerifyResult:
    """Recompute the chain; report edited entries, missing entries and a cut-off tail — in the active language
    (the command's: settings.LANGUAGE_CODE; the audit page's: the reader's)."""
    problems: list[str] = []
    # the chain starts at entry 1; the triggers refuse edits and deletions, not new rows, so an entry numbered
    # below it (a forged sign-in or read, hashed to fit its own content) was never read by the walk below
    outside = AuditEntry.objects.filter(seq__lt=1).order_by("seq").values_list("seq", flat=True)
    for seq in outside.iterator():
        problems.append(
            _("entry %(seq)d: numbered before the first entry, outside the chain (added)") % {"seq": seq}
        )
    prev_hash, expected_seq, checked = GENESIS, 1, 0
    last_seq = 0
    head = None
    while True:
        rows = list(AuditEntry.objects.filter(seq__gte=expected_seq).order_by("seq")[:batch])
        if not rows:
            # the application keeps writing meanwhile: a head ahead of the last entry read is a cut-off tail only
            # if no entry came after it since (else those are checked too, and the head read again)
            head = AuditChainHead.objects.filter(pk=1).first()
            newer = AuditEntry.objects.filter(seq__gt=last_seq)
            if head is not None and head.seq > last_seq and newer.exists():
                continue
            break
        for e in rows:
            if e.seq != expected_seq:
                problems.append(
                    _("entries %(first)d..%(last)d are missing (deleted)") % {"first": expected_seq, "last": e.seq - 1}
                )
                prev_hash = e.prev_hash  # resynchronise to keep checking what follows
            if e.prev_hash != prev_hash:
                problems.append(_("entry %(seq)d: link to the previous entry is broken") % {"seq": e.seq})
            if _digest(e.prev_hash, e) != e.hash:
                problems.append(_("entry %(seq)d: content does not match its hash (edited)") % {"seq": e.seq})
            prev_hash, expected_seq, last_seq = e.hash, e.seq + 1, e.seq
            checked += 1
    if head is not None and (head.seq != last_seq or (last_seq and head.hash != prev_hash)):
        problems.append(
            _("the chain ends at entry %(last)d but its head records entry %(head)d (tail deleted or edited)")
            % {"last": last_seq, "head": head.seq}
        )
    return VerifyResult(
        checked=checked, problems=problems, last_seq=last_seq, last_hash=prev_hash if last_seq else ""
    )


# Reads that cover several records at once (a list page, a 360 page's people, an export) are filed without an
# object id and name their records in `extra` under this key, per object type.
MANY_KEYS = {"customers.person": "people", "servicedesk.ticket": "tickets"}


def about_object(qs, object_type: str, object_id: str):
    """The entries about one record: its own, and the reads of several records that include it — so that
    "who has read this person's data?" finds the list pages, 360 pages and exports too."""
    from django.db.models import Q
    from django.db.models.expressions import RawSQL

    object_id = unicodedata.normalize("NFKC", str(object_id)).strip()  # １２ typed in full-width mode is 12
    key = MANY_KEYS.get(object_type or "")
    if key is None or not object_id.isdigit():
        return qs.filter(object_id=object_id)
    if connection.vendor == "postgresql":
        inside = Q(extra__contains={key: [int(object_id)]})
    else:
        table = AuditEntry._meta.db_table
        inside = Q(pk__in=RawSQL(
            f"SELECT e.id FROM {table} e, json_each(e.extra, '$.{key}') j WHERE e.object_id = '' "  # noqa: S608
            "AND e.action IN ('read_personal', 'export') AND j.value = %s", (int(object_id),),
        ))  # fmt: skip
    many = Q(object_id="", action__in=[AuditEntry.Action.READ_PERSONAL, AuditEntry.Action.EXPORT]) & inside
    return qs.filter(Q(object_id=object_id) | many)


def by_actor(name: str):
    """A filter for the entries by the user with this username or display name (either case), or recorded
    under that name (a system actor, a deleted user): what the audit page and the API's actor_name find."""
    from django.db.models import Q

    from .models import User

    users = User.objects.filter(Q(username__iexact=name) | Q(display_name__iexact=name)).values("pk")
    return Q(actor_id__in=users) | Q(actor_name__iexact=name)
