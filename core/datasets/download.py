"""Resumable-safe file download with progress and checksum.

The file is streamed to ``<name>.part`` and renamed to its final name only after its MD5 matched,
so an interrupted or corrupted download is never taken for a complete file.
"""
from __future__ import annotations

import contextlib
import hashlib
import os
import time
import urllib.error
import urllib.request
from pathlib import Path

from core.errors import DatasetError
from core.datasets.source import DownloadProgress

CHUNK = 1 << 20
TIMEOUT_S = 30  # no byte at all for this long: the connection is dead
#: a trickle is a stall too: fewer than STALL_MIN_BYTES in any STALL_WINDOW_S seconds stops the download
STALL_WINDOW_S = 60
STALL_MIN_BYTES = 64 * 1024
#: the whole download, however it goes (the largest MedMNIST file is a few GB)
DEADLINE_S = 4 * 3600


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
    start = window_start = time.monotonic()
    window_bytes = 0
    try:
        # "wb": a .part left by a killed earlier run is overwritten, and removed below whatever happens
        with urllib.request.urlopen(url, timeout=TIMEOUT_S) as resp, open(part, "wb") as fh:
            total = resp.headers.get("Content-Length")
            total = int(total) if total and total.isdigit() else None
            h = hashlib.md5()
            if progress:
                progress(0, total)
            while True:
                chunk = resp.read1(CHUNK)  # whatever has arrived: a trickle cannot hold one read forever
                if not chunk:
                    break
                fh.write(chunk)
                h.update(chunk)
                done += len(chunk)
                window_bytes += len(chunk)
                if progress:
                    progress(done, total)
                now = time.monotonic()
                if now - start > DEADLINE_S:
                    raise DatasetError(f"Download of {url} took over {DEADLINE_S / 3600:g} h ({done:,} bytes so far) "
                                       f"and was stopped. {manual}")
                if now - window_start >= STALL_WINDOW_S:
                    if window_bytes < STALL_MIN_BYTES:
                        raise DatasetError(f"Download of {url} stalled: {window_bytes:,} bytes in the last "
                                           f"{now - window_start:.0f} s ({done:,} bytes in all). Try again later, or: "
                                           f"{manual}")
                    window_start, window_bytes = now, 0
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
