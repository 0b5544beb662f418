"""Fetch one pinned file (and the package's licence) from an npm package, for the build scripts that
vendor data into the repository (bench/build_world_map.py, bench/build_us_counties.py).

Runs ``npm pack <package>`` into a temporary folder (only when a table is rebuilt; nothing fetches at
run time), reads ``member`` and ``licence`` out of the tarball, and refuses a file whose SHA-256 is not
the pinned one.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path


def fetch_pinned(package: str, member: str, sha256: str, licence: str = "package/LICENSE") -> tuple[bytes, bytes]:
    """(the member's bytes, the licence's bytes or b"") of ``package`` (``name@version``); exits with a
    message naming the package when npm is missing, the member is absent or its SHA-256 differs."""
    if shutil.which("npm") is None:
        sys.exit(f"npm is needed to fetch {package} (apt-get install npm)")
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(["npm", "pack", package, "--silent", "--pack-destination", tmp], check=True,
                       stdout=subprocess.DEVNULL)
        (archive,) = Path(tmp).glob("*.tgz")
        with tarfile.open(archive) as tar:
            data, notice = tar.extractfile(member), tar.extractfile(licence)
            if data is None:
                sys.exit(f"{package} has no {member}")
            content, text = data.read(), notice.read() if notice is not None else b""
    digest = hashlib.sha256(content).hexdigest()
    if digest != sha256:
        sys.exit(f"{package} {member}: SHA-256 {digest}, expected {sha256}; check the package and update the pin")
    return content, text
