"""Preemption: SIGTERM or SIGINT during fit() means "save at the next batch boundary, then exit 0"."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType

__all__ = ["PreemptionWatcher", "TrainingPreempted"]

_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class TrainingPreempted(SystemExit):
    """Raised by ``Trainer.fit()`` once the checkpoint asked for by a SIGTERM/SIGINT is written.

    It is a ``SystemExit`` with status 0, so a script stops cleanly and a cluster scheduler sees a
    clean exit; rerun with ``autoresume=True`` to continue. Catch it to do more before exiting.
    """

    def __init__(self, signal_name: str, checkpoint: Path) -> None:
        super().__init__(0)
        self.signal_name = signal_name
        self.checkpoint = checkpoint

    def __str__(self) -> str:
        return f"{self.signal_name} received: saved {self.checkpoint}; rerun with autoresume=True to continue"


class PreemptionWatcher:
    """Notes SIGTERM/SIGINT while :meth:`watching`; the loop polls :attr:`signal_name` at batch boundaries.

    The first signal only sets the flag and puts the previous handlers back, so a second Ctrl-C
    interrupts at once as usual. Outside the main thread signals cannot be caught; nothing is watched.

    Example:
        >>> watcher = PreemptionWatcher()
        >>> with watcher.watching():
        ...     signal.raise_signal(signal.SIGTERM)
        >>> watcher.signal_name
        'SIGTERM'
    """

    def __init__(self) -> None:
        self.signal_name: str | None = None

    @contextmanager
    def watching(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = {number: signal.getsignal(number) for number in _SIGNALS}

        def note(number: int, frame: FrameType | None) -> None:
            self.signal_name = signal.Signals(number).name
            for other, handler in previous.items():
                signal.signal(other, handler)

        for number in _SIGNALS:
            signal.signal(number, note)
        try:
            yield
        finally:
            for number, handler in previous.items():
                signal.signal(number, handler)
