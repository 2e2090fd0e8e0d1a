"""Single key presses from the terminal, for `ingest top` (``q`` quits, ``n``/``p`` switch symbol).

The terminal is put in cbreak mode while the dashboard runs: a key arrives without Enter and is not
echoed, and Ctrl-C still raises KeyboardInterrupt. Without a terminal on stdin there are no keys,
and `Keys.read` only waits."""

from __future__ import annotations

import os
import select
import sys
import termios
import time
import tty
from typing import Any


class Keys:
    def __init__(self) -> None:
        self.fd: int | None = sys.stdin.fileno() if sys.stdin.isatty() else None
        self._saved: list[Any] | None = None

    def __enter__(self) -> Keys:
        if self.fd is not None:
            self._saved = termios.tcgetattr(self.fd)
            tty.setcbreak(self.fd)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.fd is not None and self._saved is not None:
            termios.tcsetattr(self.fd, termios.TCSADRAIN, self._saved)

    def read(self, timeout: float) -> str | None:
        """The next key pressed within ``timeout`` seconds, else None."""
        if self.fd is None:
            time.sleep(max(0.0, timeout))
            return None
        ready, _, _ = select.select([self.fd], [], [], max(0.0, timeout))
        return os.read(self.fd, 1).decode(errors="ignore") if ready else None
