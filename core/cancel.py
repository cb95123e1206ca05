"""A cancel token for long calls (attribution batches, training), set from any thread."""
from __future__ import annotations

import threading


class CancelToken:
    """Set from any thread to stop a running call at its next check; the call raises :class:`Cancelled`."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()
