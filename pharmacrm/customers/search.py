"""The one search box: n-gram and pinyin index upkeep, and ranked look-up by name fragment,
pinyin, initials, phone (blind index), credit code and internal code."""

from __future__ import annotations

import dataclasses
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass

from django.core.exceptions import PermissionDenied
from django.db import connection
from django.db.models import Q

from pharmacrm.core import access, crypto
from pharmacrm.core.ids import any_of_sql, id_set
from pharmacrm.core.roles import Cap

from . import normalise
from .models import Institution, Person, SearchTerm
from .readings import (  # noqa: F401 (re-exported)
    _CJK,
    _U_KEYS,
    SURNAME_READINGS,
    other_readings,
    person_readings,
    person_syllables,
    syllables,
)

INSTITUTION, PERSON = SearchTerm.Kind.INSTITUTION, SearchTerm.Kind.PERSON
_LABELS = {INSTITUTION: "institution", PERSON: "person"}
POSTINGS_LIMIT = 5000  # postings read per term; beyond it a term is too common to narrow anything
RANGE_LIMIT = 400  # postings read (and candidates ranked) per step of a look-up
MAX_TERM = 64
NARROWED_READ = 1000  # the same when scope or filters will discard most candidates
BEYOND_LIMIT = 2000  # customers a user sees outside their territory's provinces, named one by one in a search
# what a hit shows (result page, suggestions, institution pickers, API): a model instance of all columns
# cost more than the query that loads it; the masked phone is the only personal field decrypted
# (a department's hospital, a person's institution and its hospital: two departments called 产科 are told apart)
INSTITUTION_HIT_FIELDS = ("id", "code", "name", "kind", "tier", "phone", "region__code", "region__name", "region__full_name", "parent__id", "parent__name")  # fmt: skip
PERSON_HIT_FIELDS = ("id", "code", "name", "role", "tier", "mobile", "landline", "institution__id", "institution__name", "institution__parent__id", "institution__parent__name")  # fmt: skip
KEYWORD_CONTEXT_LIMIT = 5000  # customers read through the institutions a keyword names (their departments, people)
# places per query when reading the customers at them, by column: the index stays the plan. Measured on
# PostgreSQL at 1.2 M people: a department's column (null for most people) turned to a whole-table scan from
# about 2,000 places; the other two columns kept their index at 4,000.
KEYWORD_PLACES_SLICE = {"parent_id": 2000, "institution_id": 2000, "department_id": 800}
KEYWORD_PROBE = 100  # customers read whose own name holds a keyword besides the anchor (a few: none to read elsewhere)
KEYWORD_PAIR_READS = 5  # a keyword's character-pair postings read per customer its look-up may read
KEYWORD_OWN_READ = 1000  # customers read whose own name holds a keyword (more: generic words like 医院 cost too much)
_LATIN_QUERY = re.compile(r"^[a-z][a-z ']*$")
# pinyin's ü as the index spells it, v (吕 lv, 女 nv), the way input methods type it: lü, lǚ, lu: are the same
_U_UMLAUT = str.maketrans(dict.fromkeys("üǖǘǚǜ", "v"))
# separators people write in phone numbers and codes: 0311-39210254, (0311) 3921 0254, 138.0013.8000
_SEPARATORS = re.compile(r"[\s\-()\[\].·—–]")
# a phone once separators are gone (full-width forms are folded first): +86 / 0086, an optional extension
_PHONE_QUERY = re.compile(r"^\+?\d{7,}(?:(?:转|ext|x|#)\d{1,6})?$", re.IGNORECASE)
_CODE_QUERY = re.compile(r"^[IP]\d{6,}$")


def name_terms(name: str, infix_positions: int = 8, person: bool = False) -> set[str]:
    """Index terms for a name: CJK uni/bigrams and pinyin/initials keys, prefix and infix."""
    norm = normalise.name(name)
    if not norm:
        return set()
    terms = {"C" + norm[:1]}
    for i in range(len(norm) - 1):
        terms.add(("C" if i == 0 else "c") + norm[i : i + 2])
    if _CJK.search(norm):
        # every reading a user may type: a surname's own and its characters' common one (曾 zeng, ceng), ü as v
        # and as u (吕 lv, lu); other readings than the first are few, on the names that need them only
        for syl in _readings(norm, person):
            for i in range(min(len(syl) - 1, infix_positions) + 1):
                full = "".join(syl[i:])
                initials = "".join(s[:1] for s in syl[i:])
                ns = "L" if i == 0 else "l"
                terms.add(ns + full[: MAX_TERM - 1])
                if len(initials) >= 2:
                    terms.add(ns + initials[: MAX_TERM - 1])
    else:
        terms.add("L" + norm[: MAX_TERM - 1])
    return terms


def _readings(norm: str, person: bool) -> list[tuple[str, ...]]:
    """The readings of a normalised name that the search finds it by, its own first."""
    if person:
        return person_readings(norm)
    syl = syllables(norm)
    return [syl, *other_readings(syl)] if not _U_KEYS.isdisjoint(syl) else [syl]


def institution_terms(obj: Institution) -> set[str]:
    terms = name_terms(obj.name)
    if obj.short_name:
        terms |= name_terms(obj.short_name, infix_positions=2)
    return terms


def person_terms(obj: Person) -> set[str]:
    return name_terms(obj.name, infix_positions=1, person=True)


def province_number(province: str) -> int:
    """A province column ('330000') as the postings store it (33); 0 for a customer without a region."""
    return int(province[:2]) if province else 0


def reindex(objs: Iterable[Institution | Person]) -> None:
    """Replace the index rows of these objects (call inside the writing transaction, after their region
    columns are current: the postings carry the province)."""
    objs = list(objs)
    if not objs:
        return
    kind = INSTITUTION if isinstance(objs[0], Institution) else PERSON
    make = institution_terms if kind == INSTITUTION else person_terms
    SearchTerm.objects.filter(kind=kind, obj_id__in=[o.pk for o in objs]).delete()
    SearchTerm.objects.bulk_create(
        [SearchTerm(term=t, kind=kind, obj_id=o.pk, province=province_number(o.province))
         for o in objs if o.merged_into_id is None for t in make(o)],
        batch_size=2000,
    )  # fmt: skip


def move_people(person_ids, province: str) -> int:
    """Give these people's postings a new province (their institution moved)."""
    number = province_number(province)
    return (
        SearchTerm.objects.filter(kind=PERSON, obj_id__in=person_ids).exclude(province=number).update(province=number)
    )


def unindex(kind: int, ids: Iterable[int]) -> None:
    SearchTerm.objects.filter(kind=kind, obj_id__in=list(ids)).delete()


# --- look-up -----------------------------------------------------------------------------------


@dataclass
class Hit:
    kind: str  # "institution" | "person"
    obj: Institution | Person
    score: float
    match: str  # what matched: name, pinyin, phone, credit_code, code

    @property
    def id(self) -> int:
        return self.obj.pk


@dataclass
class Filters:
    type: str = ""
    region: str = ""  # a region code: province, city or district
    tier: str = ""
    owner: int | None = None
    stage: str = ""

    def institution_q(self) -> Q:
        q = Q()
        if self.type:
            q &= Q(kind=self.type)
        if self.region:
            q &= access.region_q(self.region)
        if self.tier:
            q &= Q(tier=self.tier)
        if self.owner:
            q &= Q(owner_id=self.owner)
        if self.stage:
            q &= Q(stage=self.stage)
        return q

    def person_q(self) -> Q:
        q = Q()
        if self.region:
            q &= access.region_q(self.region)
        if self.tier:
            q &= Q(tier=self.tier)
        if self.owner:
            q &= Q(owner_id=self.owner)
        if self.stage:
            q &= Q(stage=self.stage)
        return q

    @property
    def any(self) -> bool:
        return bool(self.type or self.region or self.tier or self.owner or self.stage)


TIER_BONUS = {"key": 10, "vip": 6, "regular": 3, "new": 0}
# Match classes. The tier bonus (at most 10) and the tie-break on length (below 1) order customers within a
# class only, never across classes: the whole name > the start of the name > further inside it. Pinyin typed
# whole syllables at a time: a start that ends inside a syllable (xian of 向 xiang) is a start of its own class,
# below one that ends between syllables (xian of 西安 xi'an, 冼 xian).
EXACT, PREFIX, PREFIX_PART, INSIDE = 100.0, 80.0, 65.0, 50.0


class Hits(list):
    """Ranked hits, best first. `complete` is False when more customers match, or may match, than were
    returned: the ranking was cut at the limit, or an index list was too long to read whole."""

    complete = True


@dataclass
class _Postings:
    ids: list[int]  # in obj_id order
    cut: bool  # the term has more postings than were read


@dataclass(frozen=True)
class _Narrow:
    """A condition on the postings' province (read from the term index itself) that every customer the user
    may see, and the filters keep, meets: a rep's search reads the postings of their territory."""

    provinces: tuple[int, ...]  # postings of customers in these provinces …
    beyond: tuple[int, ...]  # … or of these customers, wherever they are
    only: int | None  # and, with a region filter, in this province

    def where(self) -> tuple[str, list]:
        table = SearchTerm._meta.db_table
        province, obj_id = f'"{table}"."province"', f'"{table}"."obj_id"'
        either, params = [], []
        if self.provinces:
            either.append(f"{province} IN ({', '.join(str(int(p)) for p in self.provinces)})")
        if self.beyond:
            sql, ids = any_of_sql(obj_id, self.beyond, connection.vendor)
            either.append(sql)
            params += ids
        where = f"({' OR '.join(either)})" if either else "1 = 0"
        if self.only is not None:
            where += f" AND {province} = {int(self.only)}"
        return where, params


def _narrowing(user, kind: int, filters: Filters, memo: dict) -> tuple[_Narrow | None, bool]:
    """How to narrow the postings for this user and these filters, and whether that leaves only customers the
    user may see (a territory of whole provinces: the candidates then need no wider read)."""
    region = str(filters.region or "").strip()
    only = int(region[:2]) if region[:2].isdigit() else None  # a region code's first two digits: its province
    place = access.territory(user, "institution" if kind == INSTITUTION else "person", BEYOND_LIMIT, memo)
    if place is None:
        return (None if only is None else _Narrow((only,), (), None)), False
    provinces = tuple(sorted(province_number(p) for p in place.provinces))
    return _Narrow(provinces, place.beyond, only), place.whole_provinces


def _postings(look: _Look, q: Q, limit: int, order: str = "obj_id", terms: bool = False) -> list:
    """Candidate ids straight from the index, narrowed to the user's provinces; scope and filters are then
    applied to the short list. One term's postings come in obj_id order (the index order); a pinyin range
    in term order."""
    qs = SearchTerm.objects.filter(q, kind=look.kind).order_by(order)
    if look.narrow is not None:
        where, params = look.narrow.where()
        qs = qs.extra(where=[where], params=params)  # noqa: S610 (numbers and bound parameters only)
    return list((qs.values_list("obj_id", "term") if terms else qs.values_list("obj_id", flat=True))[:limit])


def _term_sql(kind: int, narrow: _Narrow | None) -> tuple[str, list]:
    """One term's postings of one kind, in obj_id order (the index order): SQL and its parameters besides the
    term and the limit. Written out: the ORM took longer to build it than the database took to answer."""
    table = SearchTerm._meta.db_table
    where, params = narrow.where() if narrow is not None else ("", [])
    sql = f'SELECT obj_id FROM "{table}" WHERE "{table}"."term" = %s AND "{table}"."kind" = {int(kind)}'
    return f"{sql}{' AND ' + where if where else ''} ORDER BY obj_id LIMIT %s", params


def _term(look: _Look, term: str, limit: int) -> _Postings:
    """One term's first `limit` postings (obj_id order) and whether it has more. A search reads a term once:
    the first ids of a longer read already made are the shorter read (the whole text's look-up reads 张泽's
    postings, the keyword 张泽's look-up then needs fewer of them)."""
    memo = look.memo if look.memo is not None else {}
    key = ("term", look.kind, look.narrow, term)
    if key in memo:
        read = memo[key]
        if not read.cut or limit <= len(read.ids):
            return _Postings(read.ids[:limit], len(read.ids) > limit or read.cut)
    sql, params = _term_sql(look.kind, look.narrow)
    params = [term, *params, limit + 1]
    # people's look-up of this search, still to come, reads the same terms: one round trip reads both kinds
    # (`partner`: the institutions' narrowing it pairs with, and people's)
    partner = memo.get("partner") if look.kind == INSTITUTION else None
    paired = partner is not None and partner[0] == look.narrow and connection.vendor == "postgresql"
    if paired:
        other, other_params = _term_sql(PERSON, partner[1])
        sql = f"SELECT 1, obj_id FROM ({sql}) a UNION ALL SELECT 2, obj_id FROM ({other}) b"
        params += [term, *other_params, limit + 1]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    if paired:
        ids = [pk for k, pk in rows if k == 1]
        theirs = [pk for k, pk in rows if k == 2]
        _remember(memo, ("term", PERSON, partner[1], term), _Postings(theirs[:limit], len(theirs) > limit))
    else:
        ids = [pk for (pk,) in rows]
    found = _Postings(ids[:limit], len(ids) > limit)
    _remember(memo, key, found)
    return found


def _remember(memo: dict, key, read: _Postings) -> None:
    """Keep the longer of two reads of a term: it answers every shorter one."""
    if key not in memo or len(read.ids) > len(memo[key].ids) or not read.cut:
        memo[key] = read


def _intersect(lists: list[_Postings]) -> tuple[set[int], bool]:
    """Ids on every list, and whether they are all of them. A list cut at its read limit still rules out
    the ids up to its last one (lists are in obj_id order); ids beyond it stay candidates, which the
    check of the name settles."""
    whole = sorted((p for p in lists if not p.cut), key=lambda p: len(p.ids))
    cut = [p for p in lists if p.cut]
    if whole:
        ids, complete = set(whole[0].ids), True
        for p in whole[1:]:
            ids.intersection_update(p.ids)
    else:
        ids, complete = set(cut[0].ids), False  # every list is cut: only the lowest ids are known
    for p in cut:
        if not ids:
            break
        last, seen = p.ids[-1], set(p.ids)
        ids = {i for i in ids if i > last or i in seen}
    return ids, complete


def _name_class(norm: str):
    """The match class of a name for a name query: whole, start, inside, or None (does not contain it)."""

    def base(pk: int, name_norm: str) -> float | None:
        if name_norm == norm:
            return EXACT
        if name_norm.startswith(norm):
            return PREFIX
        return INSIDE if norm in name_norm else None

    return base


def _with_ids(qs, ids: list[int]):
    """qs restricted to these ids, all of them one SQL parameter (the AnyOf lookup): building and converting
    an `IN (%s, …)` list of thousands of parameters cost more than running the query."""
    return qs.filter(pk__any_of=id_set(ids))


def _candidates(kind: int, filters: Filters, ids, restrict: Q | None, columns):
    """These columns of the candidates among these ids that the filters and the restriction keep."""
    model = Institution if kind == INSTITUTION else Person
    # no ORDER BY: the candidates are ranked here (the models' pinyin order cost a sort and its compilation)
    qs = _with_ids(model.objects.filter(merged_into__isnull=True).order_by(), ids)
    if filters.any:
        qs = qs.filter(filters.institution_q() if kind == INSTITUTION else filters.person_q())
    if restrict is not None:
        qs = qs.filter(restrict)
    return qs.values_list(*columns)


def _rank_columns(kind: int) -> tuple[str, ...]:
    return ("id", "name", "name_norm", "tier", *access.SCOPE_COLUMNS[_LABELS[kind]])


def _rank_rows(user, kind: int, rows, base_score, limit: int):
    """The visible best `limit` of these rows (`_rank_columns` first) as (score, id), and how many visible
    ones match in all."""
    scored, scope_rows = [], []
    width = len(_rank_columns(kind))
    for pk, name, name_norm, tier, *scope in rows:
        base = base_score(pk, name_norm)
        if base is not None:
            scored.append((-(base + TIER_BONUS.get(tier, 0) - min(len(name), 40) / 40), name, pk))
            scope_rows.append((pk, *scope[: width - 4]))
    visible = access.visible_from_rows(user, _LABELS[kind], scope_rows)
    scored = sorted(s for s in scored if s[2] in visible)
    return [(-neg, pk) for neg, _name, pk in scored[:limit]], len(scored)


def _ranked_ids(user, kind: int, filters: Filters, ids, base_score, limit: int, restrict: Q | None = None):
    """Rank candidates on light columns (no decryption, no joins): the visible best `limit` as (score, id),
    and how many visible candidates match in all. `base_score(id, name_norm)` gives a candidate's match
    class, None to drop it."""
    ids = list(ids)
    if not ids:
        return [], 0
    rows = _candidates(kind, filters, ids, restrict, _rank_columns(kind))
    return _rank_rows(user, kind, rows, base_score, limit)


def _hits(kind: int, ranked, match: str) -> list[Hit]:
    """Full objects for the final hits only."""
    if not ranked:
        return []
    if kind == INSTITUTION:
        institutions = Institution.objects.select_related("region", "parent").only(*INSTITUTION_HIT_FIELDS).order_by()
        objs = institutions.in_bulk([pk for _, pk in ranked])
        label = "institution"
    else:
        people = Person.objects.select_related("institution__parent").only(*PERSON_HIT_FIELDS).order_by()
        objs = people.in_bulk([pk for _, pk in ranked])
        label = "person"
    return [Hit(kind=label, obj=objs[pk], score=score, match=match) for score, pk in ranked if pk in objs]


@dataclass
class _Look:
    """One look-up of one kind of customer: what to rank and how."""

    user: object
    kind: int
    filters: Filters
    restrict: Q | None
    limit: int
    read: int  # postings read, and candidates ranked, per step
    narrow: _Narrow | None = None
    memo: dict | None = None  # shared by the look-ups of one search: the user's scope, keywords' postings

    def rank(self, ids, base_score) -> tuple[list[tuple[float, int]], bool]:
        """The best `limit` of these candidates, and whether that is every match among them."""
        ids = sorted(ids)
        ranked, total = _ranked_ids(
            self.user, self.kind, self.filters, ids[: self.read], base_score, self.limit, self.restrict
        )
        return ranked, len(ids) <= self.read and total <= self.limit


def _exact(look: _Look, qs, merged: bool = False) -> tuple[list[tuple[float, int]], bool]:
    """An exact look-up on an indexed column (blind index, credit code, internal code). `merged`: a merged-away
    record that matches finds the record it was merged into (a caller on the duplicate's phone)."""
    ids = list(qs.filter(merged_into__isnull=True).values_list("id", flat=True)[: look.read + 1])
    if merged:
        ids = sorted({*ids, *survivors(qs, look.read + 1)})
    return look.rank(ids, lambda pk, name_norm: EXACT)


def survivors(qs, limit: int) -> list[int]:
    """The records that the merged-away records among `qs` were merged into (the last one of a chain). A merge keeps
    the survivor's own phones and e-mail; the duplicate's stay on the merged record, history that still says
    whose they are."""
    ids = set(qs.filter(merged_into__isnull=False).values_list("merged_into_id", flat=True)[:limit])
    found: set[int] = set()
    for _hop in range(20):  # a record merged into one merged again later
        if not ids:
            break
        rows = list(qs.model.objects.filter(pk__in=ids).values_list("id", "merged_into_id"))
        found.update(pk for pk, into in rows if into is None)
        ids = {into for _pk, into in rows if into is not None} - found
    return sorted(found)[:limit]


def _by_name(look: _Look, norm: str) -> tuple[list[tuple[float, int]], bool]:
    """Customers whose name contains the (normalised) query: the whole name, then names that start with
    it, then names that hold it further inside. Every candidate's name is checked, so a name that merely
    shares some characters with the query is never a hit."""
    base = _name_class(norm)
    if len(norm) <= 2:
        first = _term(look, "C" + norm, look.read)
        start, start_complete = set(first.ids), not first.cut
    else:
        # a name that holds the query has each of its bigrams after the first inside the name ("c" terms):
        # none does when one of them is on no name (上海神经外科 typed as 上海 神经外科: 海神)
        later = []
        for g in dict.fromkeys(norm[i : i + 2] for i in range(1, len(norm) - 1)):
            later.append(_term(look, "c" + g, POSTINGS_LIMIT))
            if not later[-1].ids and not later[-1].cut:
                return [], True
        start, start_complete = _intersect([_term(look, "C" + norm[:2], POSTINGS_LIMIT), *later])
    ranked, complete = look.rank(start, base)
    complete = complete and start_complete
    if len(ranked) >= look.limit:
        return ranked, False  # names holding it further inside rank below these: not looked for
    if len(norm) == 1:
        return ranked, complete  # single characters are indexed at the start of a name only
    if len(norm) == 2:
        inner = _term(look, "c" + norm, look.read)
        inside, inside_complete = set(inner.ids), not inner.cut
    else:
        inside, inside_complete = _intersect([_term(look, "c" + norm[:2], POSTINGS_LIMIT), *later])
    more, more_complete = dataclasses.replace(look, limit=look.limit - len(ranked)).rank(inside - start, base)
    return ranked + more, complete and inside_complete and more_complete


def _pinyin_keys(kind: int, name_norm: str) -> tuple[str, ...]:
    """Full pinyin and initials of a name from its start, as indexed ("L" terms)."""
    if not _CJK.search(name_norm):
        return (name_norm,)
    keys: dict[str, None] = {}
    for syl in _readings(name_norm, kind == PERSON):
        keys.update(dict.fromkeys(("".join(syl), "".join(s[:1] for s in syl))))
    return tuple(keys)


def _start_class(kind: int, name_norm: str, key: str) -> float:
    """The class of a name whose pinyin starts with the query: PREFIX when the query ends between two syllables of
    a reading (西安 for xian, xi'an), or is initials (bjxh), PREFIX_PART when it ends inside one (向 xiang for xian:
    the people named 向 ranked above the 西安 clinics). A name without Chinese characters is a plain start."""
    if not _CJK.search(name_norm):
        return PREFIX
    # the query's letters cover at most as many characters (a syllable has one letter at least); the two after them
    # keep a phrase's reading (重庆 chong qing), and reading no further keeps a ranking of hundreds of names quick
    for syl in _readings(name_norm[: len(key) + 2], kind == PERSON):
        full = initials = ""
        for s in syl:
            full, initials = full + s, initials + s[:1]
            if key in (full, initials):
                return PREFIX
            if len(full) >= len(key) and len(initials) >= len(key):
                break
    return PREFIX_PART


def _by_pinyin(look: _Look, key: str) -> tuple[list[tuple[float, int]], bool]:
    """Customers whose full pinyin or pinyin initials (or Latin name) equal the query, start with it, or
    hold it after the name's first character."""
    kind = look.kind
    rows = _postings(look, Q(term__gte="L" + key, term__lt="L" + key + "\uffff"), look.read + 1, "term", True)
    cut = len(rows) > look.read
    rows = rows[: look.read]
    whole = {pk for pk, term in rows if term == "L" + key and len(key) < MAX_TERM - 1}
    start = {pk for pk, _t in rows}
    ranked, complete = look.rank(start, lambda pk, name_norm: EXACT if pk in whole else _start_class(kind, name_norm, key))
    if len(ranked) >= look.limit:
        return ranked, False
    inner = _postings(look, Q(term__gte="l" + key, term__lt="l" + key + "\uffff"), look.read + 1, "term")
    inside = set(inner[: look.read]) - start

    def base(pk: int, name_norm: str) -> float:
        # when the start list was cut, a name found inside may still start with the query
        if cut and any(k.startswith(key) for k in _pinyin_keys(kind, name_norm)):
            return _start_class(kind, name_norm, key)
        return INSIDE

    more, more_complete = dataclasses.replace(look, limit=look.limit - len(ranked)).rank(inside, base)
    return ranked + more, complete and not cut and more_complete and len(inner) <= look.read


def classify(query: str) -> str:
    q = unicodedata.normalize("NFKC", query).strip()
    compact = _SEPARATORS.sub("", q)
    code = compact.upper()
    # an 18-character credit code may be all digits: it is tried before the phone (no phone has 18 digits)
    if len(code) == 18 and normalise._CREDIT.match(code):
        if not code.isdigit() or normalise.credit_code_check_char(code[:17]) == code[17]:
            return "credit_code"
    if _CODE_QUERY.match(code):
        return "code"
    if _PHONE_QUERY.match(compact) and len(normalise.phone(compact)) >= 7:
        return "phone"
    if "@" in q:
        return "email"
    if _LATIN_QUERY.match(_fold_u(q.lower())):
        return "pinyin"
    return "name"


def _look_up(look: _Look, query: str, how: str):
    """(score, id) of the best matches of one kind, whether they are all, and what matched."""
    kind = look.kind
    compact = _SEPARATORS.sub("", query)
    if how == "phone":
        readings = normalise.phone_readings(compact, query)  # 852-9123-4567, 1-415-555-0100: from elsewhere
        if kind == PERSON:
            bidxs = [crypto.blind_index(digits, "phone") for digits in readings]
            phones = Person.objects.filter(Q(mobile_bidx__in=bidxs) | Q(landline_bidx__in=bidxs))
            return (*_exact(look, phones, True), how)
        return (*_exact(look, Institution.objects.filter(phone_norm__in=readings), True), how)
    if how == "email":
        if kind == INSTITUTION:
            return [], True, how
        bidx = crypto.blind_index(normalise.email(query), "email")
        return (*_exact(look, Person.objects.filter(email_bidx=bidx), True), how)
    if how == "credit_code":
        if kind == PERSON:
            return [], True, how
        return (*_exact(look, Institution.objects.filter(credit_code=compact.upper())), how)
    if how == "code":
        code = compact.upper()
        model = Institution if kind == INSTITUTION else Person
        if code[:1] != ("I" if kind == INSTITUTION else "P"):
            return [], True, how
        return (*_exact(look, model.objects.filter(code=code)), how)
    found = _by_text(look, query, how)
    if not found[0] and _latin_umlaut(how, query):
        how = "name"
        found = _by_text(look, query, how)
    if not found[0] and len(query.split()) > 1:
        keywords = _by_keywords(look, query.split())
        if keywords is not None:
            return (*keywords, "keywords")
    return (*found, how)


def _by_text(look: _Look, text: str, how: str) -> tuple[list[tuple[float, int]], bool]:
    """A look-up by name or pinyin of the whole text, spaces ignored (北京 协和 is 北京协和)."""
    if how == "pinyin":
        key = _pinyin_query(text)
        return _by_pinyin(look, key) if key else ([], True)
    norm = normalise.name(text)
    return _by_name(look, norm) if norm else ([], True)


def _pinyin_query(text: str) -> str:
    return _fold_u(text.lower()).replace(" ", "").replace("'", "")[: MAX_TERM - 1]


def _fold_u(text: str) -> str:
    return text.translate(_U_UMLAUT).replace("u:", "v")


def _latin_umlaut(how: str, text: str) -> bool:
    """Whether a pinyin query that found nothing may be a Latin name written with ü (Müller): look for it as a name."""
    return how == "pinyin" and _fold_u(text.lower()) != text.lower()


def _keyword_test(keyword: str, how: str):
    """Whether a name (normalised) holds this keyword, for a customer of the given kind."""
    if how == "pinyin":
        key = _pinyin_query(keyword)
        return lambda kind, name_norm: bool(name_norm) and any(key in k for k in _pinyin_keys(kind, name_norm))
    norm = normalise.name(keyword)
    return lambda kind, name_norm: bool(name_norm) and norm in name_norm


def _cut(ids: list[int], read: int) -> tuple[list[int], bool]:
    return sorted(set(ids[:read])), len(ids) > read


def _whole_ids(intersection: tuple[set[int], bool]) -> tuple[list[int], bool]:
    ids, whole = intersection
    return sorted(ids), not whole


def _keyword_ids(look: _Look, keyword: str, how: str) -> tuple[set[int], bool]:
    """The customers whose name may hold this keyword, straight from the index, and whether that is every one
    of them (no more than `look.read`). No names are read: the keyword search checks every candidate's name
    and place, and its scope, once, at the end. Shared by the two kinds' look-ups of one search."""
    key = ("keyword", look.kind, look.narrow, look.read, keyword, how)
    if look.memo is not None and key in look.memo:
        return look.memo[key]
    read = look.read
    # Where to read, in turn: the names that start with the keyword, then those that hold it further inside.
    # When there are more than can be read, those that start with it are kept (北京 gives the hospitals of
    # Beijing first, not the departments and pharmacies that mention it further inside).
    sources = []
    if how == "pinyin":
        text = _pinyin_query(keyword)
        for prefix in ("L", "l") if text else ():
            q = Q(term__gte=prefix + text, term__lt=prefix + text + "\uffff")
            sources.append(lambda q=q: _Postings(*_cut(_postings(look, q, read + 1, "term"), read)))
    else:
        norm = normalise.name(keyword)
        if 0 < len(norm) <= 2:  # single characters are indexed at the start of a name only
            sources = [lambda t=t: _term(look, t, read) for t in ("C" + norm, "c" + norm)[: len(norm)]]
        elif norm:
            # as _by_name: the bigrams after the first are on every name that holds it, at its start or inside.
            # A probe of a few names reads short lists: when every list is longer, it fails at once (急诊科 at a
            # thousand departments) instead of intersecting thousands of postings to learn so.
            cap = min(POSTINGS_LIMIT, KEYWORD_PAIR_READS * read)
            later = []
            for g in dict.fromkeys(norm[i : i + 2] for i in range(1, len(norm) - 1)):
                later.append(_term(look, "c" + g, cap))
                if not later[-1].ids and not later[-1].cut:
                    break
            if later[-1].ids or later[-1].cut:  # else no name holds one of its pairs
                sources = [
                    lambda t=t: _Postings(*_whole_ids(_intersect([_term(look, t, cap), *later])))
                    for t in ("C" + norm[:2], "c" + norm[:2])
                ]
    ids: dict[int, None] = {}
    complete = True
    for source in sources:
        if len(ids) >= read:  # the names that start with it fill the read already
            complete = False
            break
        found = source()
        ids.update(dict.fromkeys(sorted(found.ids)))
        complete = complete and not found.cut
    if len(ids) > read:
        complete = False
    ids = set(list(ids)[:read])
    if look.memo is not None:
        look.memo[key] = ids, complete
    return ids, complete


def _by_keywords(look: _Look, keywords: list[str]) -> tuple[list[tuple[float, int]], bool] | None:
    """Several keywords separated by spaces, each of them a name fragment or pinyin (石家庄 产科, 张伟 协和,
    zhangwei xh): customers whose own name holds at least one keyword and whose name or place — a
    department's hospital, a person's institution and that institution's hospital — holds every one.
    None when a keyword is not a name or pinyin (a phone, a code): such a query has no keyword reading."""
    keywords = list(dict.fromkeys(keywords))[:5]
    hows = [classify(k) for k in keywords]
    if any(how not in ("name", "pinyin") for how in hows):
        return None
    kind, memo = look.kind, look.memo if look.memo is not None else {}
    # every match holds a keyword in its own name: read those far enough that the look-up is usually complete
    own_read = max(look.read, KEYWORD_OWN_READ)  # never fewer than a look-up of places would read
    own_look = dataclasses.replace(look, limit=own_read, read=own_read)
    # an institution's own look-up without filters is the look-up of places by that keyword
    same = kind == INSTITUTION and not look.filters.any and look.restrict is None
    anchor_look = dataclasses.replace(_look(look.user, INSTITUTION, Filters(), own_read, None, "name", memo), read=own_read)
    owns: list[set[int]] = []
    named_places: dict[int, set[int]] = {}  # the places each keyword names, as far as they were read
    own_complete, anchor = True, None
    # An anchor: a keyword whose own-name and place look-ups both read every customer. Every match holds it in
    # its own name or its place's, so the anchor's own matches and the customers at its places that hold
    # another keyword are every candidate: the other keywords (a common department name such as 急诊科
    # names a thousand departments) need no look-up of their own.
    for i, (keyword, how) in enumerate(zip(keywords, hows, strict=True)):
        found, complete = _keyword_ids(own_look, keyword, how)
        owns.append(found)
        own_complete = own_complete and complete
        if not complete:
            continue
        if same:
            places = owns[-1]
        else:
            places, complete = _keyword_ids(anchor_look, keyword, how)
            named_places[i] = places
        if complete:
            anchor = i
            break
    others = [(k, how) for i, (k, how) in enumerate(zip(keywords, hows, strict=True)) if i != anchor]
    if anchor is not None:
        candidates = set(owns[anchor])
        # another keyword in few own names (no person is called 口腔科) gives its matches outright; only the
        # others need reading at the anchor's places
        probe = dataclasses.replace(look, limit=KEYWORD_PROBE, read=KEYWORD_PROBE)
        open_others = []
        for keyword, how in others:
            found, complete = _keyword_ids(probe, keyword, how)
            if complete:
                candidates.update(found)
            else:
                open_others.append((keyword, how))
        near, cut = _near(kind, places, open_others) if open_others else ([], False)
        candidates.update(near)
    else:
        candidates, cut = set().union(*owns), False
        # every match holds a keyword in its own name: when those look-ups read every such customer, the
        # candidates are complete already, and reading the customers of the places the keywords name would
        # only cost time
        if not own_complete:
            place_look = _look(look.user, INSTITUTION, Filters(), look.read, None, "name", memo)
            places = set()
            for i, (keyword, how) in enumerate(zip(keywords, hows, strict=True)):
                if same:  # an institution's own look-up read the places already
                    places.update(owns[i])
                elif i in named_places:
                    places.update(named_places[i])
                else:
                    places.update(_keyword_ids(place_look, keyword, how)[0])
            candidates.update(_near(kind, places, others)[0])
            # some customers whose own name holds a keyword were not read (nor were their places'): a match
            # may be among them, whatever the places read gave
            cut = True
    if not candidates:
        return [], not cut
    # the candidates' rows serve both the keyword test and the ranking: one read
    rank_columns = _rank_columns(kind)
    at_columns = ("parent_id",) if kind == INSTITUTION else ("institution_id", "department_id")
    rows = list(_candidates(kind, look.filters, sorted(candidates), look.restrict, rank_columns + at_columns))
    width = len(rank_columns)
    # the places' names by their ids, apart: joined to the candidates, PostgreSQL hashed the whole institution table
    places = _places({pk for row in rows for pk in row[width:] if pk})
    if kind == PERSON:  # a person's institution's hospital (a department given as the institution)
        places |= _places({parent for _name, parent in places.values() if parent and parent not in places})
    tests = [_keyword_test(k, how) for k, how in zip(keywords, hows, strict=True)]
    own_matches, matched = {}, []
    for row in rows:
        name_norm, at = row[2], row[width:]
        place_names = [places[i][0] for i in at if i in places]
        if kind == PERSON and at[0] in places and places[at[0]][1] in places:
            place_names.append(places[places[at[0]][1]][0])
        in_own = [test(kind, name_norm) for test in tests]
        if any(in_own) and all(
            mine or any(test(INSTITUTION, place) for place in place_names)
            for mine, test in zip(in_own, tests, strict=True)
        ):
            own_matches[row[0]] = sum(in_own)
            matched.append(row)
    # the lowest `read` ids are ranked, as every look-up ranks them
    matched.sort(key=lambda row: row[0])
    # more keywords in the customer's own name rank higher; all of them stay below a match of the whole text
    ranked, total = _rank_rows(
        look.user, kind, matched[: look.read], lambda pk, name_norm: INSIDE - 10 + 5 * own_matches[pk], look.limit
    )
    return ranked, len(matched) <= look.read and total <= look.limit and not cut


def _places(ids: set[int]) -> dict[int, tuple[str, int | None]]:
    """Institutions' normalised names and parents, by id."""
    if not ids:
        return {}
    table = Institution._meta.db_table
    where, params = any_of_sql(f'"{table}"."id"', sorted(ids), connection.vendor)
    with connection.cursor() as cursor:  # written out, as _term_sql
        cursor.execute(f'SELECT id, name_norm, parent_id FROM "{table}" WHERE {where}', params)
        return {pk: (name_norm, parent) for pk, name_norm, parent in cursor.fetchall()}


def _near(kind: int, places: set[int], keywords: list[tuple[str, str]]) -> tuple[list[int], bool]:
    """Customers at these places whose own name may hold one of these keywords — a place's departments; for
    people, everyone whose institution or department is one of the places (a person's department belongs to
    their institution: the services keep it so) — and whether there were more than could be read."""
    if not places:
        return [], False
    named = Q()
    if keywords and all(how == "name" for _k, how in keywords):
        # the database filters by the keywords' characters (pinyin is checked on the names read)
        for keyword, _how in keywords:
            named |= Q(name_norm__contains=normalise.name(keyword))
    at = sorted(places)
    found: dict[int, None] = {}
    model = Institution if kind == INSTITUTION else Person
    # merged-away customers are dropped with the candidates' names: a test of merged_into here made SQLite read
    # its index (null for nearly everyone) instead of the places'
    base = model.objects.order_by().filter(named)
    # one indexed look-up per column and per slice of places: for the OR of two columns, or a list of
    # too many places, PostgreSQL scans the whole table
    for column in ("parent_id",) if kind == INSTITUTION else ("institution_id", "department_id"):
        size = KEYWORD_PLACES_SLICE[column]
        for i in range(0, len(at), size):
            if len(found) > KEYWORD_CONTEXT_LIMIT:
                break
            part = id_set(at[i : i + size])
            found.update(dict.fromkeys(base.filter(**{f"{column}__any_of": part})
                                       .values_list("id", flat=True)[: KEYWORD_CONTEXT_LIMIT + 1]))  # fmt: skip
    near = list(found)
    return near[:KEYWORD_CONTEXT_LIMIT], len(near) > KEYWORD_CONTEXT_LIMIT


def _prepare(query: str) -> str:
    return normalise.visible(unicodedata.normalize("NFKC", query or "")).strip()[:100]


def _look(user, kind: int, filters: Filters, limit: int, restrict: Q | None, how: str, memo: dict) -> _Look:
    # only look-ups by name and pinyin read postings; the others are one indexed equality
    narrow, exact = _narrowing(user, kind, filters, memo) if how in ("name", "pinyin") else (None, False)
    # a search whose candidates scope, filters or a restriction will thin out reads more postings, so that
    # enough survive — unless the postings already hold only the user's territory of whole provinces
    scoped = access.institution_scope_q(user) is not None
    narrowed = filters.any or restrict is not None or (scoped and not exact)
    read = max(NARROWED_READ if narrowed else RANGE_LIMIT, limit + 1)
    return _Look(user, kind, filters, restrict, limit, read, narrow, memo)


class ContactLookUpsExceeded(PermissionDenied):
    """More look-ups by a whole phone number or e-mail address this hour than a user who sees them masked may make."""


def check_contact_look_up(user, query: str) -> None:
    """A look-up by a whole phone number or e-mail address, by a user who sees personal data masked (an agent until
    they state a reason, an analyst): finding who holds a number is reading it, so each is in the audit trail (the
    number masked), and at most CONTACT_LOOK_UPS_PER_HOUR an hour are answered. A masked 139****2390 hides four
    digits: ten thousand look-ups, unaudited and unlimited, told the number (found by QA in session 56). An agent
    finding the caller of each call needs a few dozen an hour; PermissionDenied beyond that, saying why."""
    query = _prepare(query)
    how = classify(query) if query else ""
    if how not in ("phone", "email") or access.can(user, Cap.VIEW_PERSONAL_DATA):
        return
    from django.conf import settings
    from django.core.cache import cache
    from django.utils import timezone
    from django.utils.translation import gettext as _

    from pharmacrm.core import audit
    from pharmacrm.core.models import AuditEntry

    limit = settings.PHARMACRM_CONTACT_LOOK_UPS_PER_HOUR
    key = f"contact-look-ups:{user.pk}:{timezone.now():%Y%m%d%H}"
    cache.add(key, 0, 3600)
    try:
        count = cache.incr(key)
    except ValueError:  # expired between the two: a new hour
        cache.set(key, 1, 3600)
        count = 1
    shown = normalise.mask_contacts(query) if how == "email" else normalise.mask_phone(normalise.phone_readings(query)[0])
    audit.record(AuditEntry.Action.READ_PERSONAL, ("customers.person", "", "search"), user=user,
                 purpose=f"search by {how}", q=shown, refused=count > limit)  # fmt: skip
    if count > limit:
        raise ContactLookUpsExceeded(_(
            "You have looked customers up by a whole phone number or e-mail address %(limit)s times this hour, the "
            "most allowed while personal data is masked for you: search by name or code, or try again next hour."
        ) % {"limit": limit})


def ranked_ids(user, query: str, kind: str, filters: Filters | None = None, limit: int = 20, restrict=None):
    """The ids of the best `limit` matches of one kind (no objects loaded), and whether they are every
    match: for list pages, which load the rows of one page only. `restrict` narrows the candidates further
    (a Q on the model, e.g. a list's role or institution filter)."""
    filters = filters or Filters()
    check_contact_look_up(user, query)
    query = _prepare(query)
    if not query:
        return [], True
    how = classify(query)
    look = _look(user, INSTITUTION if kind == "institution" else PERSON, filters, limit, restrict, how, {})
    ranked, complete, _match = _look_up(look, query, how)
    return [pk for _score, pk in ranked], complete


def every_match(qs, query: str, kind: str):
    """Every customer of `qs` (one kind, scoped and filtered by the caller) that the search box finds for this
    query, unranked and uncut: what an export of a search writes. The look-ups above rank a few thousand at most;
    this is one query that the database answers from the same index and the same name checks."""
    query = _prepare(query)
    if not query:
        return qs.none()
    how = classify(query)
    num = INSTITUTION if kind == "institution" else PERSON
    compact = _SEPARATORS.sub("", query)
    if how in ("phone", "email"):
        if how == "phone" and num == INSTITUTION:
            same = Q(phone_norm__in=normalise.phone_readings(compact, query))
        elif how == "phone":
            bidxs = [crypto.blind_index(digits, "phone") for digits in normalise.phone_readings(compact, query)]
            same = Q(mobile_bidx__in=bidxs) | Q(landline_bidx__in=bidxs)
        elif num == PERSON:
            same = Q(email_bidx=crypto.blind_index(normalise.email(query), "email"))
        else:
            return qs.none()
        merged = survivors(qs.model.objects.filter(same), 1000)  # a merged record's: its survivor, as above
        return qs.filter(same | Q(pk__in=merged))
    if how == "credit_code":
        return qs.filter(credit_code=compact.upper()) if num == INSTITUTION else qs.none()
    if how == "code":
        code = compact.upper()
        return qs.filter(code=code) if code[:1] == ("I" if num == INSTITUTION else "P") else qs.none()
    whole = qs.filter(_text_q(num, query, how, ""))
    if _latin_umlaut(how, query) and not whole.exists():
        whole = qs.filter(_text_q(num, query, "name", ""))
    keywords = list(dict.fromkeys(query.split()))[:5]
    hows = [classify(k) for k in keywords]
    if len(keywords) < 2 or any(h not in ("name", "pinyin") for h in hows) or whole.exists():
        return whole
    # as _by_keywords: the own name holds a keyword, and the own name or a place's holds every one
    at_person = ["institution__", "department__", "institution__parent__"]
    places = ["parent__"] if num == INSTITUTION else at_person
    own = [_text_q(num, k, how, "") for k, how in zip(keywords, hows, strict=True)]
    every = Q()
    for k, how, mine in zip(keywords, hows, own, strict=True):
        at = Q()
        for place in places:
            at |= _text_q(INSTITUTION, k, how, place)
        every &= mine | at
    either = Q()
    for mine in own:
        either |= mine
    return qs.filter(either & every)


def _text_q(kind: int, text: str, how: str, via: str) -> Q:
    """The customers (`via`: the related institution, e.g. "parent__") whose name the search finds for this text:
    the name holds it (a single character: at the start of a name or short name), or the pinyin postings start
    with it (at the start of the name, or after its first characters)."""
    if how == "pinyin":
        key = _pinyin_query(text)
        if not key:
            return Q(pk__in=[])
        terms = Q()
        for prefix in ("L", "l"):  # from the name's start, after its first characters
            terms |= Q(term__gte=prefix + key, term__lt=prefix + key + "\uffff")
        return Q(**{f"{via}pk__in": SearchTerm.objects.filter(terms, kind=kind).values("obj_id")})
    norm = normalise.name(text)
    if not norm:
        return Q(pk__in=[])
    starts = ["C" + norm] if len(norm) == 1 else ["C" + norm[:2], "c" + norm[:2]]
    postings = SearchTerm.objects.filter(kind=kind, term__in=starts).values("obj_id")
    return Q(**{f"{via}pk__in": postings, f"{via}name_norm__contains": norm})


def search(user, query: str, filters: Filters | None = None, limit: int = 20, kinds=("institution", "person")):
    """Ranked hits for what the user typed, only among customers the user may see."""
    filters = filters or Filters()
    check_contact_look_up(user, query)
    query = _prepare(query)
    if not query:
        return Hits()
    if filters.type:
        kinds = ("institution",)
    how = classify(query)
    hits, complete, memo = Hits(), True, {}  # memo: what both kinds' look-ups read of the user's scope
    looks = {
        kind: _look(user, kind, filters, limit, None, how, memo)
        for kind, label in ((INSTITUTION, "institution"), (PERSON, "person"))
        if label in kinds
    }
    if len(looks) == 2 and how in ("name", "pinyin"):  # the institutions' look-up reads people's postings too
        memo["partner"] = (looks[INSTITUTION].narrow, looks[PERSON].narrow)
    for kind, look in looks.items():
        if kind == PERSON:
            memo.pop("partner", None)
        ranked, kind_complete, match = _look_up(look, query, how)
        hits += _hits(kind, ranked, match)
        complete = complete and kind_complete
    hits.sort(key=lambda h: (-h.score, h.obj.name, h.obj.pk))
    hits.complete = complete and len(hits) <= limit
    del hits[limit:]
    return hits
