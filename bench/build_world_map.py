"""Vendor the console's world map: newswire/console/data/countries-110m.json from npm ``world-atlas``.

    .venv/bin/python bench/build_world_map.py

Runs ``npm pack world-atlas@2.0.2`` (the npm registry; only needed to rebuild this file), checks
the file's SHA-256 against the one pinned here, and copies ``countries-110m.json`` as it is (with the package's licence beside it): Natural
Earth's 1:110m admin-0 countries (public domain) as quantized TopoJSON, packaged by Mike Bostock
(ISC licence). newswire/console/worldmap.py decodes and projects it when the console starts; the
console fetches nothing at run time.
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.npm_vendor import fetch_pinned

OUT = ROOT / "newswire" / "console" / "data" / "countries-110m.json"
PACKAGE = "world-atlas@2.0.2"
MEMBER = "package/countries-110m.json"
LICENSE = "package/LICENSE"  # ISC: its notice travels with the copy
SHA256 = "2516c915867c7baf18ddec727aec46c315541a07cfb3d79a6559b05d5e94eee8"


def main() -> None:
    data, licence = fetch_pinned(PACKAGE, MEMBER, SHA256, LICENSE)
    digest = hashlib.sha256(data).hexdigest()
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_bytes(data)
    OUT.with_name("world-atlas.LICENSE").write_bytes(
        f"{OUT.name}: from npm {PACKAGE} (Natural Earth data, public domain), under this licence:\n\n".encode() + licence)
    print(f"wrote {OUT.relative_to(ROOT)} ({len(data):,} bytes, sha256 {digest[:12]}...)")


if __name__ == "__main__":
    main()
