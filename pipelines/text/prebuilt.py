"""On-disk cache of the tables the enrichment stage derives from its data files at start-up.

Building the place resolver (parsing `pipelines/data/places.tsv.gz`, keying ~335k names, the
language tables) takes seconds of CPU in every worker; reading back the same structures with
`pickle` takes a fraction of that. `cached(name, sources, build)` returns `build()`'s value, from
`<cache dir>/<name>-<key>.pickle` when that file was written for exactly these inputs:

- the key is a SHA-256 of the contents of every source file, the code of `pipelines/text/*.py`,
  the Python version and the pickle protocol, so an edited gazetteer, a regenerated table or a new
  version of the code is a miss and the tables are built again (nothing has to be cleared by hand);
- the file carries a SHA-256 of its payload, checked before unpickling: a truncated or corrupt file
  is a miss too, rebuilt and rewritten;
- a file not owned by this user, or writable by others, is never read (pickle runs code);
- files are written to a temporary name and renamed into place, so a reader never sees half a file,
  and older files of the same name are removed.

Only what derives from the shipped files (CACHED_FOLDERS: our gazetteers and data tables, and
the language profiles of the installed, pinned langdetect) is cached. Where: `$NEWSWIRE_MODEL_CACHE` if set (empty or "off" turns the cache off), else `var/cache/models`
under the repository root (git-ignored). A cache that cannot be written costs the build time only.
"""

from __future__ import annotations

import gc
import hashlib
import logging
import os
import pickle
import sys
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TypeVar

from langdetect.detector_factory import PROFILES_DIRECTORY

log = logging.getLogger(__name__)

T = TypeVar("T")

CACHE_ENV = "NEWSWIRE_MODEL_CACHE"
_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_CACHE_DIR = _ROOT / "var" / "cache" / "models"
#: Only tables derived from files in these folders (the shipped gazetteers and data) are cached:
#: anything else, such as a test's temporary gazetteer, is built each time and leaves no file behind.
CACHED_FOLDERS: tuple[Path, ...] = (_ROOT / "config" / "gazetteer", _ROOT / "pipelines" / "data",
                                    Path(PROFILES_DIRECTORY).resolve())  # langdetect's, as installed
_MAGIC = b"newswire-prebuilt-1\n"
_PROTOCOL = pickle.HIGHEST_PROTOCOL
_CODE = tuple(sorted(Path(__file__).resolve().parent.glob("*.py")))


def cache_dir() -> Path | None:
    """The cache folder, or None when the cache is turned off."""
    value = os.environ.get(CACHE_ENV)
    if value is None:
        return DEFAULT_CACHE_DIR
    if value.strip().lower() in ("", "off", "0", "false", "no"):
        return None
    return Path(value)


def source_key(sources: Iterable[Path]) -> str:
    """SHA-256 (hex) of the sources' paths and contents, this package's code and the Python version."""
    h = hashlib.sha256()
    h.update(f"{sys.version_info[:3]}|{_PROTOCOL}".encode())
    for path in (*sorted(set(sources)), *_CODE):
        h.update(str(path).encode() + b"\0")
        try:
            h.update(path.read_bytes())
        except FileNotFoundError:
            h.update(b"<missing>")  # the build itself reports a missing file; no stale entry is reused
        h.update(b"\0")
    return h.hexdigest()


def path_label(path: Path) -> str:
    """A short file-name-safe label of a path, so that two folders or tables never share a cache file."""
    return hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:12]


def files_under(*folders: Path) -> list[Path]:
    """Every file under the folders (a gazetteer folder's YAML files, the data tables)."""
    return [p for folder in folders for p in sorted(folder.rglob("*")) if p.is_file()]


def cached(name: str, sources: Iterable[Path], build: Callable[[], T]) -> T:
    """build(), or its value from the cache when it was stored for the same sources (see module doc).
    `name`: a file-name-safe label; one file per name is kept."""
    folder = cache_dir()
    sources = [Path(p).resolve() for p in sources]
    if folder is None or not all(any(p.is_relative_to(f) for f in CACHED_FOLDERS) for p in sources):
        return build()
    key = source_key(sources)
    path = folder / f"{name}-{key[:24]}.pickle"
    found, value = _read(path, key)
    if found:
        return value  # type: ignore[return-value]
    value = build()
    _write(folder, name, path, key, value)
    return value


def _read(path: Path, key: str) -> tuple[bool, object]:
    try:
        with path.open("rb") as fh:
            st = os.fstat(fh.fileno())
            if st.st_uid != os.getuid() or st.st_mode & 0o022:
                log.warning("model cache %s is not private to this user; not read, rebuilding", path)
                return False, None
            data = fh.read()
    except FileNotFoundError:
        return False, None
    except OSError as exc:
        log.warning("model cache %s unreadable (%s); rebuilding", path, exc)
        return False, None
    head = _MAGIC + key.encode() + b"\n"
    digest_end = len(head) + 64
    if not data.startswith(head) or len(data) < digest_end + 1 or data[digest_end:digest_end + 1] != b"\n":
        log.warning("model cache %s is not for these sources or is damaged; rebuilding", path)
        return False, None
    payload = memoryview(data)[digest_end + 1:]
    if hashlib.sha256(payload).hexdigest().encode() != data[len(head):digest_end]:
        log.warning("model cache %s fails its checksum; rebuilding", path)
        return False, None
    enabled = gc.isenabled()
    gc.disable()  # ~600k objects, none of them garbage: collecting while they arrive triples the time
    try:
        value = pickle.loads(payload)
        # The tables live as long as the worker: out of the collector's way for good (otherwise the
        # next full collections walk all of them, ~1.5 s, and every later one again).
        gc.freeze()
        return True, value
    except Exception as exc:  # noqa: BLE001 - a checksummed file that still fails to load is rebuilt
        log.warning("model cache %s could not be loaded (%s); rebuilding", path, exc)
        return False, None
    finally:
        if enabled:
            gc.enable()


def _write(folder: Path, name: str, path: Path, key: str, value: object) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        payload = pickle.dumps(value, protocol=_PROTOCOL)
        fd, tmp = tempfile.mkstemp(prefix=f".{name}-", suffix=".tmp", dir=folder)  # mode 0600
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(_MAGIC + key.encode() + b"\n" + hashlib.sha256(payload).hexdigest().encode() + b"\n")
                fh.write(payload)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        for old in folder.glob(f"{name}-*.pickle"):
            if old != path:
                old.unlink(missing_ok=True)
    except (OSError, pickle.PicklingError) as exc:
        log.warning("model cache %s not written (%s); the next start builds the tables again", path, exc)
