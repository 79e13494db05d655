"""A progress bar on stderr for a class being graded (one line per submission when not a terminal)."""

from __future__ import annotations

import sys
import threading
from typing import TextIO

__all__ = ["Progress"]


class Progress:
    def __init__(self, total: int, stream: TextIO | None = None, enabled: bool = True, width: int = 30):
        self.total, self.done, self.width = total, 0, width
        self.stream = stream or sys.stderr
        self.enabled = enabled
        self.tty = enabled and hasattr(self.stream, "isatty") and self.stream.isatty()
        self._lock = threading.Lock()

    def update(self, message: str) -> None:
        if not self.enabled:
            return
        with self._lock:
            self.done += 1
            if self.tty:
                filled = self.width * self.done // max(self.total, 1)
                bar = "#" * filled + "-" * (self.width - filled)
                self.stream.write(f"\rgrading [{bar}] {self.done}/{self.total}  {message[:60]:<60}")
                if self.done == self.total:
                    self.stream.write("\n")
            else:
                self.stream.write(f"graded {self.done}/{self.total}: {message}\n")
            self.stream.flush()
