"""Build pipelines/data/demonyms.tsv: English demonyms of every country and territory, from npm ``world-countries``.

    .venv/bin/python bench/build_demonyms.py

Runs ``npm pack world-countries@5.1.0`` (the npm registry; only needed to rebuild the table), checks the
SHA-256 of ``countries.json`` against the one pinned here, and writes one ``<ISO 3166-1 alpha-2><TAB>
<demonym>`` row per English demonym (masculine and feminine forms; "Antiguan, Barbudan" and "Kittitian
or Nevisian" give one row each). Left out: a demonym that two countries share ("Channel Islander",
"Virgin Islander": it names neither alone), and one that is the country's own name or its first word
("Djibouti", "Vatican": a place name, read as the place). config/gazetteer/demonyms.yaml stays on top:
its words win over this table's (pipelines/text/gazetteer.py ``load_demonyms``), and it adds the
informal forms ("Aussie", "Brit") the package lacks. Data: mledoze/countries, ODbL 1.0; the licence
travels beside the table.
"""

from __future__ import annotations

import json
import re
import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.npm_vendor import fetch_pinned
from pipelines.text.gazetteer import DEMONYMS_TABLE, name_key

PACKAGE = "world-countries@5.1.0"
MEMBER = "package/countries.json"
LICENSE = "package/LICENSE"
SHA256 = "359431fb9475666dfad1ea5e72e53521cef40520f65eecd08e02ba569eb8491b"
_SEPARATORS = re.compile(r",\s*|\s+or\s+")


def demonym_rows(countries: list[dict]) -> list[tuple[str, str]]:
    """(code, demonym) rows from world-countries' records, sorted; see the module docstring for what is left out."""
    codes: dict[str, set[str]] = defaultdict(set)
    for c in countries:
        code, common = c["cca2"], name_key(c["name"]["common"])
        english = (c.get("demonyms") or {}).get("eng") or {}
        for form in {english.get("m"), english.get("f")} - {None, ""}:
            for word in _SEPARATORS.split(str(form).strip()):
                if word and name_key(word) not in (common, common.split()[0]):
                    codes[word].add(code)
    return sorted((next(iter(c)), word) for word, c in codes.items() if len(c) == 1)


def main() -> None:
    data, licence = fetch_pinned(PACKAGE, MEMBER, SHA256, LICENSE)
    rows = demonym_rows(json.loads(data))
    DEMONYMS_TABLE.write_text("".join(f"{code}\t{word}\n" for code, word in rows), encoding="utf-8")
    DEMONYMS_TABLE.with_name("world-countries.LICENSE").write_bytes(licence)
    print(f"{DEMONYMS_TABLE.relative_to(ROOT)}: {len(rows)} demonyms")


if __name__ == "__main__":
    main()
