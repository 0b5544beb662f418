"""The story page's offline world map: the vendored outlines, the projection, and markers from a
real store's events (hostile names and malformed coordinates included)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from core.settings import load_settings
from newswire.console import worldmap
from newswire.console.app import CONTENT_SECURITY_POLICY, Console
from tests.newswire import hostile
from tests.newswire.test_console import VIEWER, assert_inert, hostile_console, login


@pytest.fixture
def console(tmp_path: Path) -> Iterator[Console]:
    settings = load_settings(overrides={"storage.url": f"sqlite:///{tmp_path / 'store.db'}", "data_dir": str(tmp_path)},
                             environ={})
    made = hostile_console(settings)
    yield made
    made.store.close()


def country(name: str) -> worldmap.Country:
    return next(c for c in worldmap.countries() if c.name == name)


def test_the_atlas_decodes_to_countries_whose_outlines_hold_their_capitals() -> None:
    assert len(worldmap.countries()) == 177  # Natural Earth 1:110m admin-0
    for name, lon, lat in [("Finland", 24.94, 60.17), ("Brazil", -47.93, -15.78), ("Japan", 139.69, 35.69),
                           ("Australia", 149.13, -35.28), ("United States of America", -77.04, 38.91)]:
        assert any(worldmap.contains(ring, lon, lat) for ring in country(name).rings), name
    # and a neighbour's capital is not inside: Stockholm is in Sweden, not Finland
    assert not any(worldmap.contains(ring, 18.07, 59.33) for ring in country("Finland").rings)
    assert any(worldmap.contains(ring, 18.07, 59.33) for ring in country("Sweden").rings)


def test_projection_fills_the_box_and_clamps_what_is_off_the_globe() -> None:
    assert worldmap.project(0, 0) == (worldmap.VIEW_W / 2, worldmap.VIEW_H / 2)
    assert worldmap.project(-180, 0)[0] == pytest.approx(0) and worldmap.project(180, 0)[0] == pytest.approx(1920)
    assert 0 <= worldmap.project(0, 90)[1] < 2 and worldmap.VIEW_H - 2 < worldmap.project(0, -90)[1] <= worldmap.VIEW_H
    assert worldmap.project(500, 200) == worldmap.project(180, 90)


def test_a_ring_across_the_antimeridian_is_drawn_on_both_edges_not_across_the_map() -> None:
    fiji = country("Fiji")
    crossing = [ring for ring in fiji.rings if max(lon for lon, _ in ring) - min(lon for lon, _ in ring) > 180]
    assert crossing, "Fiji's 110m outline crosses 180 degrees"
    path = worldmap.ring_paths(crossing[0])
    starts = [int(x) for x in re.findall(r"M(-?\d+) ", path)]
    assert len(starts) == 2 and all(abs(x - worldmap.VIEW_W / 2) > 900 for x in starts)  # both near an edge
    steps = [abs(int(dx)) for dx in re.findall(r"l(-?\d+) ", path)]
    assert max(steps) < 100  # no line jumps across the map


def test_markers_count_events_per_place_and_leave_off_bad_coordinates() -> None:
    helsinki = {"id": "geonames:658225", "name": "Helsinki", "lat": 60.17, "lon": 24.94, "feature": "city"}
    finland = {"id": "geonames:660013", "name": "Finland", "lat": 64.0, "lon": 26.0, "feature": "country"}
    events = [{"places": [helsinki, finland, helsinki]}, {"places": [finland]}, {"places": "no list"},
              {"places": [{"id": "x", "name": "NaN", "lat": float("nan"), "lon": 0.0},
                          {"id": "y", "name": "off", "lat": 91, "lon": 0},
                          {"id": "z", "name": "bool", "lat": True, "lon": 0}, "not a place"]}]
    markers = worldmap.place_markers(events)
    assert [(m.name, m.events, m.feature) for m in markers] == [("Finland", 2, "country"), ("Helsinki", 1, "city")]
    x, y = worldmap.project(24.94, 60.17)
    assert (markers[1].x, markers[1].y) == (round(x, 1), round(y, 1)) and markers[0].r > markers[1].r
    assert len(worldmap.place_markers([{"places": [{**helsinki, "id": str(i)}]} for i in range(100)], limit=7)) == 7


def test_story_page_draws_its_places_on_the_offline_map_with_names_as_text(console: Console) -> None:
    client = TestClient(console.app)
    login(client, VIEWER)
    html = assert_inert(client, f"/stories/{hostile.STORY_ID}")
    svg = re.search(r'<figure class="map">.*?</figure>', html, re.DOTALL)
    assert svg, "the story page has no map"
    # the outlines come from this console, never another origin; one marker, at Helsinki
    assert '<image href="/map/world.svg"' in svg.group()
    circles = re.findall(r'<circle cx="([\d.]+)" cy="([\d.]+)" r="([\d.]+)"/>', svg.group())
    x, y = worldmap.project(24.93545, 60.16952)
    assert [(float(cx), float(cy)) for cx, cy, _ in circles] == [(round(x, 1), round(y, 1))]
    assert any(worldmap.contains(ring, 24.93545, 60.16952) for ring in country("Finland").rings)
    # the hostile name is escaped text (title and label), its hostile feature no class of its own
    assert "<text" in svg.group() and "invoice[U+202E]txt.exe &lt;script&gt;" in svg.group()
    assert 'class="marker feature-other"' in svg.group() and "Nowhere" not in svg.group()  # no numbers: off the map


def test_world_map_is_one_svg_image_with_no_script_style_or_other_origin(console: Console) -> None:
    reply = TestClient(console.app).get("/map/world.svg")  # public shapes: no login needed
    assert reply.status_code == 200 and reply.headers["content-type"] == "image/svg+xml"
    assert reply.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    body = reply.text
    assert body.count("<path ") == 177 and f'viewBox="0 0 {worldmap.VIEW_W} {worldmap.VIEW_H}"' in body
    assert "<script" not in body and "<style" not in body and " style=" not in body and "href" not in body
    assert re.findall(r"https?://[^\"' ]+", body) == ["http://www.w3.org/2000/svg"]


def test_the_view_zooms_to_the_markers_and_stays_in_the_world() -> None:
    def marker(lon: float, lat: float) -> worldmap.Marker:
        x, y = worldmap.project(lon, lat)
        return worldmap.Marker("p", "p", "city", x, y, 1, 6.0)

    nordic = [marker(24.94, 60.17), marker(18.07, 59.33), marker(10.75, 59.91)]
    view = worldmap.map_view(nordic)
    assert view.w == worldmap.MIN_VIEW_W and view.h / view.w == pytest.approx(worldmap.VIEW_H / worldmap.VIEW_W)
    assert all(view.x < m.x < view.x + view.w and view.y < m.y < view.y + view.h for m in nordic)
    assert view.px < 1  # zoomed in: fewer box units per screen pixel than the whole map's
    spread = worldmap.map_view([marker(174.78, -41.29), marker(-47.93, -15.78), marker(-171.7, -13.8)])
    assert (spread.x, spread.w) == (0, worldmap.VIEW_W) and 0 <= spread.y <= worldmap.VIEW_H - spread.h
    east, south = worldmap.map_view([marker(179.5, 0)]), worldmap.map_view([marker(0, -89)])
    assert east.x + east.w == pytest.approx(worldmap.VIEW_W)  # clamped inside the box, not past its edge
    assert south.y + south.h == pytest.approx(worldmap.VIEW_H)
    assert worldmap.map_view([]).box == f"0 0 {worldmap.VIEW_W} {worldmap.VIEW_H}"
