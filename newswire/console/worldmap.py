"""The console's offline world map: country outlines drawn on the server, and a marker per place.

The outlines are Natural Earth's 1:110m countries as TopoJSON, from the npm package
``world-atlas`` (2.0.2), vendored as ``data/countries-110m.json`` by ``bench/build_world_map.py``
(nothing is fetched at run time). They are decoded and projected once per process with the Natural
Earth projection (the polynomial of d3-geo's ``geoNaturalEarth1``) into a ``VIEW_W`` x ``VIEW_H``
box, served as one SVG document (``/map/world.svg``, an image: it holds no script and no style
element, so it needs nothing from the CSP). A page draws the same box as inline SVG with that image
behind and one circle per place, placed by :func:`project`, so outlines and markers always agree.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from itertools import pairwise
from pathlib import Path
from typing import Any, TypeGuard

import orjson

WORLD_ATLAS = Path(__file__).resolve().parent / "data" / "countries-110m.json"

#: The map's box in SVG user units (integers: the outlines are rounded to whole units, fine at
#: twice the width a page shows it).
VIEW_W, VIEW_H = 1920, 1000

# Natural Earth at latitude 0 and longitude 180 is 0.8707 * pi wide; at the poles 1.4224 tall.
_HALF_WIDTH = 0.8707 * math.pi
_SCALE = VIEW_W / (2 * _HALF_WIDTH)

#: Place features drawn with their own marker style (the enriched-event schema's ``feature``).
FEATURES = ("country", "admin1", "city", "continent", "region", "sea")


def project(lon: float, lat: float) -> tuple[float, float]:
    """(x, y) in the map's box of a longitude and latitude in degrees (Natural Earth projection)."""
    return _natural_earth(max(-180.0, min(180.0, lon)), max(-90.0, min(90.0, lat)))


def _natural_earth(lon: float, lat: float) -> tuple[float, float]:
    """The projection without clamping: a longitude past 180 lands past the map's edge (x is
    linear in longitude), where the outline's clip cuts it off."""
    lam, phi = math.radians(lon), math.radians(lat)
    phi2 = phi * phi
    phi4 = phi2 * phi2
    x = lam * (0.8707 - 0.131979 * phi2 + phi4 * (-0.013791 + phi4 * (0.003971 * phi2 - 0.001529 * phi4)))
    y = phi * (1.007226 + phi2 * (0.015085 + phi4 * (-0.044475 + 0.028874 * phi2 - 0.005916 * phi4)))
    return VIEW_W / 2 + x * _SCALE, VIEW_H / 2 - y * _SCALE


@dataclass(frozen=True)
class Country:
    """One country of the atlas: ISO 3166-1 numeric id, name, and its rings as (lon, lat) lists."""

    id: str
    name: str
    rings: tuple[tuple[tuple[float, float], ...], ...]


def decode_topology(topology: dict[str, Any], layer: str = "countries") -> list[Country]:
    """The countries of a quantized TopoJSON topology (world-atlas): arcs delta-decoded and scaled
    by the topology's transform, each polygon ring stitched from its arcs (a negative index is an
    arc reversed: ``~i``)."""
    (kx, ky), (dx, dy) = topology["transform"]["scale"], topology["transform"]["translate"]
    arcs = []
    for arc in topology["arcs"]:
        x = y = 0
        points = []
        for qx, qy in arc:
            x, y = x + qx, y + qy
            points.append((x * kx + dx, y * ky + dy))
        arcs.append(points)

    def ring(indexes: list[int]) -> tuple[tuple[float, float], ...]:
        points: list[tuple[float, float]] = []
        for i in indexes:
            part = arcs[i] if i >= 0 else arcs[~i][::-1]
            points.extend(part if not points else part[1:])  # arcs share their end points
        return tuple(points)

    countries = []
    for geometry in topology["objects"][layer]["geometries"]:
        polygons = {"Polygon": [geometry.get("arcs") or []], "MultiPolygon": geometry.get("arcs") or []}.get(
            geometry.get("type"), [])
        rings = tuple(ring(r) for polygon in polygons for r in polygon)
        countries.append(Country(str(geometry.get("id", "")), str((geometry.get("properties") or {}).get("name", "")),
                                 rings))
    return countries


@cache
def countries() -> list[Country]:
    """The vendored atlas's countries (decoded once per process)."""
    return decode_topology(orjson.loads(WORLD_ATLAS.read_bytes()))


def ring_paths(ring: tuple[tuple[float, float], ...]) -> str:
    """SVG path data of one ring, projected. A ring that crosses the antimeridian (Russia's east,
    Fiji) is drawn with continuous longitudes, once as it is and once a turn (360 degrees) over,
    each cut to the map by the outline's clip path; a ring around a pole (its longitudes turn
    once around) is drawn as it is."""
    lons = [ring[0][0]] if ring else []
    for (previous, _), (lon, _) in pairwise(ring):
        step = lon - previous
        lons.append(lons[-1] + step - 360 * round(step / 360))
    if not lons or abs(lons[-1] - lons[0]) > 180 or (-180 <= min(lons) and max(lons) <= 180):
        return _path((lon, lat) for lon, lat in ring)
    shift = 360 if min(lons) < -180 else -360
    points = [(lon, lat) for lon, (_, lat) in zip(lons, ring, strict=True)]
    return _path(points) + _path((lon + shift, lat) for lon, lat in points)


def _path(points: Iterable[tuple[float, float]]) -> str:
    """An absolute move, then relative lines between the rounded projected points (repeats
    dropped), closed."""
    out: list[str] = []
    last: tuple[int, int] | None = None
    for lon, lat in points:
        x, y = _natural_earth(lon, lat)
        point = (round(x), round(y))
        if last is None:
            out.append(f"M{point[0]} {point[1]}")
        elif point != last:
            out.append(f"l{point[0] - last[0]} {point[1] - last[1]}")
        last = point
    return "".join(out) + "z" if out else ""


@cache
def base_map_svg() -> bytes:
    """The world map as an SVG document: an ocean rectangle, the graticule's edge and one path per
    country (presentation attributes only: an SVG image gets no style sheet, and the CSP allows
    no inline style)."""
    outline = " ".join(f"{x:.0f},{y:.0f}" for x, y in
                       [project(-180, lat) for lat in range(-90, 91, 5)] + [project(180, lat) for lat in range(90, -91, -5)])
    paths = "\n".join(f'<path d="{"".join(ring_paths(r) for r in c.rings)}"/>' for c in countries())
    return (f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {VIEW_W} {VIEW_H}" width="{VIEW_W}" height="{VIEW_H}">\n'
            f'<clipPath id="world"><polygon points="{outline}"/></clipPath>\n'
            f'<polygon points="{outline}" fill="#eef3f8" stroke="#c9d3df" stroke-width="2"/>\n'
            f'<g clip-path="url(#world)" fill="#d9dfe7" stroke="#ffffff" stroke-width="1.2" stroke-linejoin="round">\n'
            f'{paths}\n</g>\n'
            "<!-- Natural Earth 1:110m countries (public domain) via world-atlas 2.0.2 (ISC) -->\n</svg>\n").encode()


@dataclass(frozen=True)
class Marker:
    """A place to draw: its id and name as stored (the template escapes them), its feature (one of
    FEATURES, else "other"), where it goes in the map's box, the events that named it, and its
    radius in CSS pixels (grows with the events)."""

    id: str
    name: str
    feature: str
    x: float
    y: float
    events: int
    r: float


def place_markers(events: Iterable[dict[str, Any]], limit: int = 60) -> list[Marker]:
    """One marker per distinct place of `events` (stored EnrichedEvents: ``places`` with lat/lon),
    most-named first, at most `limit`. A place without usable coordinates (missing, not a number,
    out of range) is left off: stored records are not trusted to be well formed."""
    seen: dict[str, dict[str, Any]] = {}
    for event in events:
        places = event.get("places") if isinstance(event, dict) else None
        if not isinstance(places, list):
            continue
        named_here = set()
        for place in places:
            if not isinstance(place, dict):
                continue
            lat, lon = place.get("lat"), place.get("lon")
            if not (_number(lat) and _number(lon) and -90 <= lat <= 90 and -180 <= lon <= 180):
                continue
            key = str(place.get("id") or f"{lat},{lon}")
            entry = seen.setdefault(key, {"name": str(place.get("name") or key), "lat": lat, "lon": lon,
                                          "feature": str(place.get("feature") or ""), "events": 0})
            if key not in named_here:
                entry["events"] += 1
                named_here.add(key)
    ranked = sorted(seen.items(), key=lambda kv: (-kv[1]["events"], kv[1]["name"]))[:limit]
    markers = []
    for key, p in ranked:
        x, y = project(p["lon"], p["lat"])
        markers.append(Marker(key, p["name"], p["feature"] if p["feature"] in FEATURES else "other",
                              round(x, 1), round(y, 1), p["events"], round(6 + 3 * math.sqrt(p["events"] - 1), 1)))
    return markers


#: The width a page shows the map at, in CSS pixels (console.css: figure.map, 48rem less padding), and the
#: narrowest part of the world a map zooms to (in the box's units: about a fifth of the globe).
SHOWN_PX = 760
MIN_VIEW_W = 400


@dataclass(frozen=True)
class MapView:
    """The part of the map a page shows: an SVG viewBox (x, y, w, h in the box's units, the box's
    aspect ratio) around the markers, and ``px``: box units per CSS pixel, to size markers and
    labels the same on screen however far the view zooms."""

    x: float
    y: float
    w: float
    h: float

    @property
    def px(self) -> float:
        return self.w / SHOWN_PX

    @property
    def box(self) -> str:
        return f"{self.x:.0f} {self.y:.0f} {self.w:.0f} {self.h:.0f}"


def map_view(markers: list[Marker]) -> MapView:
    """The view that holds every marker with a margin, zoomed in no further than MIN_VIEW_W and
    kept inside the world (the whole map when the markers span it)."""
    if not markers:
        return MapView(0, 0, VIEW_W, VIEW_H)
    xs, ys = [m.x for m in markers], [m.y for m in markers]
    aspect = VIEW_H / VIEW_W
    w = min(VIEW_W, max(MIN_VIEW_W, (max(xs) - min(xs)) * 1.3 + 120, ((max(ys) - min(ys)) * 1.3 + 120) / aspect))
    h = min(float(VIEW_H), w * aspect)
    x = max(0.0, min((max(xs) + min(xs)) / 2 - w / 2, VIEW_W - w))
    y = max(0.0, min((max(ys) + min(ys)) / 2 - h / 2, VIEW_H - h))
    return MapView(x, y, w, h)


def _number(value: Any) -> TypeGuard[float]:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def contains(ring: Iterable[tuple[float, float]], lon: float, lat: float) -> bool:
    """Whether (lon, lat) lies inside `ring`, compared in the map's box (even-odd rule): what a
    viewer sees, so a test can check a marker lands in its country's outline."""
    px, py = project(lon, lat)
    points = [project(*p) for p in ring]
    inside = False
    for (x1, y1), (x2, y2) in zip(points, points[1:] + points[:1], strict=True):
        if (y1 > py) != (y2 > py) and px < x1 + (py - y1) * (x2 - x1) / (y2 - y1):
            inside = not inside
    return inside
