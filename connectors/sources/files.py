"""FileSource: push text, JSON and JSONL files into the raw topic.

- ``.txt`` (or any other suffix): one fragment, the file's text; id = the file's path.
- ``.json``: one fragment object, or an array of them.
- ``.jsonl`` / ``.ndjson``: one fragment object per line.
Fragments without a ``source`` get the configured default (``connectors.files.source``).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

from connectors.sources.base import BaseSource, FragmentWriter, WriteReport
from core.settings import Settings

JSON_SUFFIXES = {".json"}
JSONL_SUFFIXES = {".jsonl", ".ndjson"}


def read_fragments(path: Path, default_source: str) -> Iterator[dict[str, Any] | tuple[str, bytes]]:
    """Fragments in one file; unparseable input comes out as (error, original bytes)."""
    data = path.read_bytes()
    suffix = path.suffix.lower()
    if suffix in JSONL_SUFFIXES:
        for n, line in enumerate(data.splitlines(), start=1):
            if line.strip():
                yield from _objects(line, f"{path}:{n}", default_source)
    elif suffix in JSON_SUFFIXES:
        yield from _objects(data, str(path), default_source)
    else:
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            yield (f"{path}: not valid UTF-8: {exc}", data)
            return
        yield {"source": default_source, "id": str(path), "text": text, "content_type": "text/plain",
               "encoding": "utf-8", "title": path.stem}


def _objects(raw: bytes, where: str, default_source: str) -> Iterator[dict[str, Any] | tuple[str, bytes]]:
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        yield (f"{where}: not JSON: {exc}", raw)
        return
    for obj in doc if isinstance(doc, list) else [doc]:
        if isinstance(obj, dict):
            yield {"source": default_source, **obj}
        else:
            yield (f"{where}: a fragment must be a JSON object, got {type(obj).__name__}", orjson.dumps(obj))


def files_under(path: Path) -> list[Path]:
    """The file itself, or every regular file below a directory (sorted, hidden files skipped)."""
    if path.is_dir():
        return sorted(p for p in path.rglob("*") if p.is_file() and not any(s.startswith(".") for s in p.parts))
    if path.is_file():
        return [path]
    raise FileNotFoundError(f"{path}: no such file or directory")


class FileSource(BaseSource):
    """One-shot ingest of files or directories (the folder-watching inbox is a separate source)."""

    def __init__(self, settings: Settings, paths: list[Path], source: str | None = None) -> None:
        super().__init__(settings)
        self.paths = paths
        self.source_name = source or settings.file_source
        self._writer: FragmentWriter | None = None
        self.report = WriteReport()

    def start(self) -> None:
        self._writer = FragmentWriter(self.settings)
        for path in self.paths:
            for file in files_under(path):
                r = self._writer.write(read_fragments(file, self.source_name))
                self.report.accepted += r.accepted
                self.report.rejected.extend(r.rejected)

    def stop(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
