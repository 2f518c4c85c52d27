"""Weight cache and verified downloads.

Files land in ``cache_dir()/<model>/<file>``: ``$UNMIX_HOME`` if set, else
``$XDG_CACHE_HOME/unmix`` (``~/.cache/unmix``). A download streams into a
temporary file beside the target while hashing it, and is renamed into place
only when its SHA-256 matches the registry: an interrupted or corrupt download
never leaves a file that later runs would trust.
"""

from __future__ import annotations

import hashlib
import json
import os
import urllib.error
import urllib.request
from pathlib import Path

from tqdm import tqdm

from ..errors import WeightsError
from ..fileio import atomic_path, atomic_write_text

CHUNK = 1 << 20
TOFU_FILE = "sha256-first-use.json"


def cache_dir() -> Path:
    """Root of the weight cache (``$UNMIX_HOME`` or the XDG cache dir)."""
    home = os.environ.get("UNMIX_HOME")
    if home:
        return Path(home).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg).expanduser() / "unmix"


def sha256_of(path: Path) -> str:
    """Hex SHA-256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def is_offline() -> bool:
    """``True`` when ``UNMIX_OFFLINE`` forbids downloads."""
    return os.environ.get("UNMIX_OFFLINE", "") not in ("", "0", "false", "no")


def fetch(
    url: str, dest: Path, sha256_prefix: str, progress: bool = True, timeout: float = 60.0
) -> Path:
    """Return ``dest``, downloading ``url`` first if it is not cached.

    Args:
        url: http(s) or file URL.
        dest: final path in the cache.
        sha256_prefix: expected hash prefix; ``""`` records the first download's hash
            (trust on first use) and checks later copies against it.
        progress: show a progress bar (only on a terminal).

    Raises:
        WeightsError: offline, HTTP errors, truncated transfers or a hash mismatch; nothing
            is left at ``dest`` in these cases.
    """
    dest = Path(dest)
    expected = sha256_prefix.lower() or recorded_hash(dest)
    if dest.is_file():
        return dest
    if is_offline():
        raise _missing(url, dest, "UNMIX_OFFLINE is set")
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            total = int(response.headers.get("Content-Length") or 0) or None
            digest = hashlib.sha256()
            received = 0
            with (
                atomic_path(dest) as tmp,
                open(tmp, "wb") as out,
                tqdm(
                    total=total,
                    unit="B",
                    unit_scale=True,
                    desc=f"downloading {dest.name}",
                    disable=not progress or None,
                    leave=False,
                ) as bar,
            ):
                for block in iter(lambda: response.read(CHUNK), b""):
                    out.write(block)
                    digest.update(block)
                    received += len(block)
                    bar.update(len(block))
                if total is not None and received != total:
                    raise WeightsError(
                        f"download of {url} stopped after {received} of {total} bytes; try again"
                    )
                actual = digest.hexdigest()
                if expected and not actual.startswith(expected):
                    raise WeightsError(
                        f"{url} has SHA-256 {actual[:16]}…, expected {expected}…: the file is "
                        "corrupt or was changed; nothing was saved"
                    )
                out.flush()
                os.fsync(out.fileno())
    except (urllib.error.URLError, OSError, ValueError) as exc:
        if isinstance(exc, WeightsError):
            raise
        if isinstance(exc, urllib.error.HTTPError):
            exc.close()  # it holds the open response
        reason = getattr(exc, "reason", None) or exc
        raise _missing(url, dest, str(reason)) from exc
    if not expected:
        record_hash(dest, actual)
    return dest


def _missing(url: str, dest: Path, reason: str) -> WeightsError:
    return WeightsError(
        f"cannot download {url} ({reason}); download it by hand and save it as {dest} "
        "(or set UNMIX_HOME to a folder that has it)"
    )


def _tofu_path(dest: Path) -> Path:
    return dest.parent / TOFU_FILE


def recorded_hash(dest: Path) -> str:
    """The SHA-256 recorded for ``dest`` on its first use, or ``""``."""
    try:
        table = json.loads(_tofu_path(dest).read_text())
    except (OSError, ValueError):
        return ""
    value = table.get(dest.name, "") if isinstance(table, dict) else ""
    return value if isinstance(value, str) else ""


def record_hash(dest: Path, digest: str) -> None:
    """Record ``dest``'s SHA-256 on first use (trust on first use), atomically."""
    path = _tofu_path(dest)
    try:
        table = json.loads(path.read_text())
        if not isinstance(table, dict):
            table = {}
    except (OSError, ValueError):
        table = {}
    table[dest.name] = digest
    atomic_write_text(path, json.dumps(table, indent=2, sort_keys=True) + "\n")
