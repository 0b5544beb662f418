"""Build pipelines/data/us_counties.tsv.gz: US counties, parishes and boroughs with points, from npm ``us-atlas``.

    .venv/bin/python bench/build_us_counties.py

Runs ``npm pack us-atlas@3.0.1`` (the npm registry; only needed to rebuild the table), checks the
SHA-256 of ``counties-10m.json`` against the one pinned here, and writes one row per county in the
place table's columns (pipelines/text/gazetteer.py ``_COLUMNS``):

- id ``nw:admin2:US-<5-digit FIPS>``, feature ``admin2``, country ``US``, admin1 the state's postal code
  (joined by the state's name to the US rows of pipelines/data/places.tsv.gz, from the FIPS prefix);
- the point: the area-weighted centroid of the county's polygons (planar in degrees: counties are
  small enough), or its largest polygon's when the centroid falls outside it; 5 decimals;
- names: "<name> County" ("<name> Parish" in Louisiana, "<name> Borough" in Alaska); the bare name is
  never a name of its own (pipelines/text/places.py reads it only with evidence);
- population: a prior, the summed population of the place table's towns of that state whose point lies
  inside the county (the Census atlas carries no population).

Independent cities (Virginia's, Baltimore, St. Louis, Carson City) are left out: the city table has
them; so are the territories' divisions (no GeoNames state code here) and the District of Columbia. Data: U.S. Census Bureau cartographic boundary files (public domain), packaged by Mike Bostock
(ISC licence); the licence travels beside the table.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.npm_vendor import fetch_pinned
from pipelines.text.gazetteer import _COLUMNS, PLACES_TABLE, US_COUNTIES_TABLE

PACKAGE = "us-atlas@3.0.1"
MEMBER = "package/counties-10m.json"
LICENSE = "package/LICENSE"
SHA256 = "145aaf5d1433352a6a1d8e86b5f149c7c653f9171baf14aaf75ee66575def1b0"
# County-equivalent independent cities (FIPS county code 510+ in these states): already towns.
_INDEPENDENT_CITY_STATES = {"24", "29", "32", "51"}
_DESIGNATOR = {"22": "Parish", "02": "Borough"}

Ring = list[tuple[float, float]]


def _decode(topo: dict) -> list[Ring]:
    """TopoJSON arcs in degrees (delta-decoded, transform applied)."""
    (sx, sy), (tx, ty) = topo["transform"]["scale"], topo["transform"]["translate"]
    arcs: list[Ring] = []
    for arc in topo["arcs"]:
        x = y = 0
        pts: Ring = []
        for dx, dy in arc:
            x += dx
            y += dy
            pts.append((x * sx + tx, y * sy + ty))
        arcs.append(pts)
    return arcs


def _ring(arcs: list[Ring], indexes: list[int]) -> Ring:
    pts: Ring = []
    for i in indexes:
        arc = arcs[i] if i >= 0 else arcs[~i][::-1]
        pts.extend(arc if not pts else arc[1:])
    return pts


def _area_centroid(ring: Ring) -> tuple[float, float, float]:
    a = cx = cy = 0.0
    for (x1, y1), (x2, y2) in zip(ring, ring[1:] + ring[:1]):
        cross = x1 * y2 - x2 * y1
        a += cross
        cx += (x1 + x2) * cross
        cy += (y1 + y2) * cross
    a /= 2
    if a == 0:
        return 0.0, ring[0][0], ring[0][1]
    return abs(a), cx / (6 * a), cy / (6 * a)


def _inside(x: float, y: float, ring: Ring) -> bool:
    hit = False
    for (x1, y1), (x2, y2) in zip(ring, ring[1:] + ring[:1]):
        if (y1 > y) != (y2 > y) and x < (x2 - x1) * (y - y1) / (y2 - y1) + x1:
            hit = not hit
    return hit


def _polygons(geom: dict, arcs: list[Ring]) -> list[Ring]:
    """Outer rings of a Polygon / MultiPolygon (holes do not move a county's point much)."""
    polys = [geom["arcs"]] if geom["type"] == "Polygon" else geom["arcs"]
    return [_ring(arcs, p[0]) for p in polys]


def main() -> None:
    data, licence = fetch_pinned(PACKAGE, MEMBER, SHA256, LICENSE)
    digest = hashlib.sha256(data).hexdigest()
    topo = json.loads(data)
    arcs = _decode(topo)
    state_names = {g["id"]: g["properties"]["name"] for g in topo["objects"]["states"]["geometries"]}
    # The state's postal code and its towns, from the shipped place table.
    postal: dict[str, str] = {}
    towns: dict[str, list[tuple[float, float, int]]] = {}
    with gzip.open(PLACES_TABLE, "rt", encoding="utf-8") as fh:
        header = fh.readline().rstrip("\n").split("\t")
        col = {c: i for i, c in enumerate(header)}
        for line in fh:
            f = line.rstrip("\n").split("\t")
            if f[col["country_code"]] != "US":
                continue
            if f[col["feature"]] == "admin1":
                postal[f[col["name"]]] = f[col["admin1"]]
            elif f[col["feature"]] == "city":
                towns.setdefault(f[col["admin1"]], []).append(
                    (float(f[col["lon"]]), float(f[col["lat"]]), int(f[col["population"]])))
    rows = []
    for geom in topo["objects"]["counties"]["geometries"]:
        fips, name = geom["id"], geom["properties"]["name"]
        state = postal.get(state_names.get(fips[:2], ""))
        if not state or state == "DC" or (fips[:2] in _INDEPENDENT_CITY_STATES and int(fips[2:]) >= 510):
            continue
        rings = _polygons(geom, arcs)
        parts = [(_area_centroid(r), r) for r in rings]
        total = sum(a for (a, _, _), _ in parts)
        if total == 0:
            continue
        x = sum(a * cx for (a, cx, _), _ in parts) / total
        y = sum(a * cy for (a, _, cy), _ in parts) / total
        if not any(_inside(x, y, r) for r in rings):
            (_, x, y), _ = max(parts, key=lambda p: p[0][0])
        xs = [p[0] for r in rings for p in r]
        ys = [p[1] for r in rings for p in r]
        box = min(xs), max(xs), min(ys), max(ys)
        population = sum(pop for tx, ty, pop in towns.get(state, ())
                         if box[0] <= tx <= box[1] and box[2] <= ty <= box[3] and any(_inside(tx, ty, r) for r in rings))
        designated = f"{name} {_DESIGNATOR.get(fips[:2], 'County')}"
        rows.append((f"nw:admin2:US-{fips}", "", "admin2", "US", state, f"{y:.5f}", f"{x:.5f}", population,
                     designated, designated, ""))
    rows.sort()
    with gzip.GzipFile(US_COUNTIES_TABLE, "wb", mtime=0) as raw, io.TextIOWrapper(raw, "utf-8") as out:
        out.write("\t".join(_COLUMNS) + "\n")
        for row in rows:
            out.write("\t".join(str(v) for v in row) + "\n")
    US_COUNTIES_TABLE.with_name("us-atlas.LICENSE").write_bytes(
        f"{US_COUNTIES_TABLE.name}: derived from npm {PACKAGE} (U.S. Census Bureau data, public domain), "
        f"under this licence:\n\n".encode() + licence)
    print(f"wrote {US_COUNTIES_TABLE.relative_to(ROOT)} ({len(rows)} rows, "
          f"{US_COUNTIES_TABLE.stat().st_size:,} bytes; {MEMBER} sha256 {digest[:12]}...)")


if __name__ == "__main__":
    main()
