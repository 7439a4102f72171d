"""Reference data every installation has: the official region list and the role groups."""

import csv
import functools
from pathlib import Path

REGIONS_CSV = Path(__file__).parent / "data" / "regions.csv"
# Traditional Chinese names (OpenCC s2t of the official names) of the regions whose name changes, shown on
# zh-Hant pages; regenerate beside regions.csv when that table is updated
REGIONS_HANT_CSV = Path(__file__).parent / "data" / "regions_hant.csv"
SKIP_IN_FULL_NAME = {"市辖区", "县", "直辖县", "省直辖县级行政区划", "自治区直辖县级行政区划"}


def load_regions(Region) -> int:
    """Insert or refresh the regions from the shipped GB/T 2260 table; returns how many there are."""
    rows = list(csv.DictReader(REGIONS_CSV.open(encoding="utf-8")))
    names = {r["code"]: r["name"] for r in rows}
    parents = {r["code"]: r["parent"] for r in rows}

    def full(code: str) -> str:
        parts = []
        while code:
            if names[code] not in SKIP_IN_FULL_NAME:
                parts.append(names[code])
            code = parents[code]
        return "".join(reversed(parts))

    existing = set(Region.objects.values_list("code", flat=True))
    new = [
        Region(code=r["code"], name=r["name"], parent_id=r["parent"] or None, level=int(r["level"]), full_name=full(r["code"]))
        for r in rows
        if r["code"] not in existing
    ]
    # parents first so the foreign keys hold on databases that check them immediately
    new.sort(key=lambda r: r.level)
    Region.objects.bulk_create(new, batch_size=1000)
    return len(rows)


@functools.cache
def hant_region_names() -> tuple[dict[str, str], dict[str, str]]:
    """(name, full name) of every region code in Traditional Chinese."""
    rows = list(csv.DictReader(REGIONS_CSV.open(encoding="utf-8")))
    hant = {r["code"]: r["name"] for r in csv.DictReader(REGIONS_HANT_CSV.open(encoding="utf-8"))}
    names = {r["code"]: hant.get(r["code"], r["name"]) for r in rows}
    return names, region_full_names(rows, names, lambda parts: "".join(reversed(parts)))


def region_full_names(rows: list[dict], names: dict[str, str], join) -> dict[str, str]:
    """Every region code's full name from `names` (code → name in one language): its own name and its parents',
    smallest first, without the placeholder levels (市辖区, 县…), joined by `join` as that language writes an
    address (北京市朝阳区; Chaoyang District, Beijing)."""
    parents = {r["code"]: r["parent"] for r in rows}
    skipped = {r["code"] for r in rows if r["name"] in SKIP_IN_FULL_NAME}
    full = {}
    for code in names:
        parts, at = [], code
        while at:
            if at not in skipped:
                parts.append(names[at])
            at = parents[at]
        full[code] = join(parts)
    return full


def ensure_roles(Group) -> None:
    from .roles import Role

    for role in Role:
        Group.objects.get_or_create(name=role.value)


def ensure_audit_head(AuditChainHead) -> None:
    """The audit chain's head (before the first entry: sequence 0, the genesis hash)."""
    AuditChainHead.objects.get_or_create(pk=1, defaults={"seq": 0, "hash": "0" * 64})
