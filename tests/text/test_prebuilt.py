"""The model cache (pipelines/text/prebuilt.py): hits only for the same sources, never trusts a bad file."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from pipelines.text import prebuilt
from pipelines.text.entities import EntityTagger
from pipelines.text.places import PlaceResolver
from pipelines.text.prebuilt import CACHE_ENV, cached

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "articles"


class Builds:
    """A build function that counts its calls and returns the source's words."""

    def __init__(self, source: Path) -> None:
        self.source = source
        self.calls = 0

    def __call__(self) -> dict[str, list[str]]:
        self.calls += 1
        return {"words": self.source.read_text().split()}


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "cache"
    monkeypatch.setenv(CACHE_ENV, str(folder))
    monkeypatch.setattr(prebuilt, "CACHED_FOLDERS", (*prebuilt.CACHED_FOLDERS, tmp_path / "sources"))
    return folder


@pytest.fixture
def source(tmp_path: Path) -> Path:
    (tmp_path / "sources").mkdir()
    path = tmp_path / "sources" / "table.txt"
    path.write_text("alpha beta gamma")
    return path


def test_second_call_reads_the_cache(cache: Path, source: Path) -> None:
    build = Builds(source)
    first = cached("table", [source], build)
    second = cached("table", [source], build)
    assert first == second == {"words": ["alpha", "beta", "gamma"]}
    assert build.calls == 1
    files = list(cache.glob("table-*.pickle"))
    assert len(files) == 1
    assert files[0].stat().st_mode & 0o077 == 0  # private to the user: pickle is only read from there


def test_an_edited_source_is_rebuilt_and_the_old_file_removed(cache: Path, source: Path) -> None:
    build = Builds(source)
    cached("table", [source], build)
    old = list(cache.glob("table-*.pickle"))
    source.write_text("alpha beta delta")
    assert cached("table", [source], build) == {"words": ["alpha", "beta", "delta"]}
    assert build.calls == 2
    new = list(cache.glob("table-*.pickle"))
    assert len(new) == 1 and new != old
    assert cached("table", [source], build)["words"][-1] == "delta"
    assert build.calls == 2


@pytest.mark.parametrize("damage", ["flip", "truncate", "header", "empty"])
def test_a_damaged_file_is_rebuilt_not_trusted(cache: Path, source: Path, damage: str,
                                               caplog: pytest.LogCaptureFixture) -> None:
    build = Builds(source)
    cached("table", [source], build)
    (path,) = cache.glob("table-*.pickle")
    data = bytearray(path.read_bytes())
    if damage == "flip":
        data[-3] ^= 0xFF  # inside the pickle payload: only the checksum can tell
    elif damage == "truncate":
        data = data[: len(data) // 2]
    elif damage == "header":
        data[:10] = b"x" * 10
    else:
        data = bytearray()
    path.write_bytes(bytes(data))
    with caplog.at_level(logging.WARNING, logger=prebuilt.__name__):
        assert cached("table", [source], build) == {"words": ["alpha", "beta", "gamma"]}
    assert build.calls == 2
    assert "rebuilding" in caplog.text
    assert cached("table", [source], build) == {"words": ["alpha", "beta", "gamma"]}  # rewritten, good again
    assert build.calls == 2


def test_a_file_others_can_write_is_not_read(cache: Path, source: Path) -> None:
    build = Builds(source)
    cached("table", [source], build)
    (path,) = cache.glob("table-*.pickle")
    path.chmod(0o666)
    cached("table", [source], build)
    assert build.calls == 2


def test_the_cache_can_be_turned_off(tmp_path: Path, source: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(CACHE_ENV, "off")
    monkeypatch.setattr(prebuilt, "CACHED_FOLDERS", (tmp_path / "sources",))
    build = Builds(source)
    cached("table", [source], build)
    cached("table", [source], build)
    assert build.calls == 2
    assert not list(tmp_path.rglob("*.pickle"))


def test_tables_from_other_folders_are_not_cached(cache: Path, tmp_path: Path) -> None:
    """A test's temporary gazetteer (anything but the shipped folders) leaves no file behind."""
    other = tmp_path / "elsewhere.txt"
    other.write_text("one two")
    build = Builds(other)
    cached("table", [other], build)
    cached("table", [other], build)
    assert build.calls == 2
    assert not cache.exists()


def test_an_unwritable_cache_costs_only_the_build(tmp_path: Path, source: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    monkeypatch.setenv(CACHE_ENV, str(blocker / "cache"))
    monkeypatch.setattr(prebuilt, "CACHED_FOLDERS", (tmp_path / "sources",))
    build = Builds(source)
    assert cached("table", [source], build) == {"words": ["alpha", "beta", "gamma"]}


def test_resolver_from_the_cache_resolves_like_a_fresh_build(cache: Path) -> None:
    """The tables read back from the cache give the same places as the tables built from the files."""
    fresh = PlaceResolver()  # an empty cache: built from the files, then written
    assert list(cache.glob("resolver-*.pickle"))
    from_cache = PlaceResolver()
    tagger = EntityTagger(mode="gazetteer", places=from_cache.place_keys())
    assert fresh.place_keys() == from_cache.place_keys()
    texts = sorted(FIXTURES.glob("*.txt"))
    assert texts
    for path in texts:
        text = path.read_text(encoding="utf-8")
        for language in ("en", "de"):
            entities = tagger.tag(text, language)
            assert from_cache.resolve(text, language, entities) == fresh.resolve(text, language, entities), path
