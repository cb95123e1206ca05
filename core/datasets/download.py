"""Resumable-safe file download with progress and checksum.

The file is streamed to ``<name>.part`` and renamed to its final name only after its MD5 matched,
so an interrupted or corrupted download is never taken for a complete file.
"""
from __future__ import annotations

import contextlib
import hashlib
import os
import urllib.error
import urllib.request
from pathlib import Path

from ..errors import DatasetError
from .source import DownloadProgress

CHUNK = 1 << 20
TIMEOUT_S = 30


def md5sum(path: Path) -> str:
    h = hashlib.md5()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


def download_file(url: str, dest: Path, md5: str | None = None, progress: DownloadProgress | None = None) -> Path:
    """Download ``url`` to ``dest`` (atomically, verified against ``md5`` when given).

    Raises:
        DatasetError: network failure (naming the URL and where to put the file by hand), a truncated
            transfer, or a checksum mismatch. No partial file is left under ``dest``.
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    manual = f"Download it by hand from {url} and put it at {dest}."
    done = 0
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_S) as resp, open(part, "wb") as fh:
            total = resp.headers.get("Content-Length")
            total = int(total) if total and total.isdigit() else None
            h = hashlib.md5()
            if progress:
                progress(0, total)
            while True:
                chunk = resp.read(CHUNK)
                if not chunk:
                    break
                fh.write(chunk)
                h.update(chunk)
                done += len(chunk)
                if progress:
                    progress(done, total)
        if total is not None and done != total:
            raise DatasetError(f"Download of {url} stopped at {done:,} of {total:,} bytes. {manual}")
        if md5 and h.hexdigest() != md5:
            raise DatasetError(f"Downloaded {dest.name} has MD5 {h.hexdigest()}, expected {md5}: the file is "
                               f"corrupt or changed. Try again, or: {manual}")
        os.replace(part, dest)
        return dest
    except DatasetError:
        raise
    except (urllib.error.URLError, OSError, TimeoutError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise DatasetError(f"Could not download {dest.name} ({reason}). You may be offline. {manual}") from exc
    finally:
        with contextlib.suppress(FileNotFoundError):
            part.unlink()  # nothing half-written survives (the final file was renamed away already)
