"""Reference data every installation has: the official region list and the role groups."""

import csv
from pathlib import Path

REGIONS_CSV = Path(__file__).parent / "data" / "regions.csv"
SKIP_IN_FULL_NAME = {"市辖区", "县", "省直辖县级行政区划", "自治区直辖县级行政区划"}


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


def ensure_roles(Group) -> None:
    from .roles import Role

    for role in Role:
        Group.objects.get_or_create(name=role.value)
