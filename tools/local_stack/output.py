"""Where the in-process function's output goes: whole lines, from any thread, to one stream.

The function writes JSON log lines (Powertools' Logger, from its worker threads) and EMF metrics (``print``, from the
main thread) to ``sys.stdout``, as Lambda wants. The local tools put a :class:`LineWriter` in ``sys.stdout``'s place
before the function's modules are imported: ``make invoke`` to send them to stderr, ``make run`` to a log file.
"""

from __future__ import annotations

import io
import threading
from typing import TextIO


class LineWriter(io.TextIOBase):
    """Stands in for sys.stdout and sys.stderr: whole lines to one stream, lines of different threads never mixed.

    The function logs from its worker threads while Powertools prints metrics from the main thread, and ``print``
    writes a line's text and its newline separately: without this, two JSON lines can end up spliced together.
    """

    def __init__(self, target: TextIO) -> None:
        self.target = target
        self.lock = threading.Lock()
        self.pending = threading.local()

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return self.target.encoding

    def writable(self) -> bool:
        return True

    def isatty(self) -> bool:
        return self.target.isatty()

    def fileno(self) -> int:
        return self.target.fileno()

    def write(self, text: str) -> int:
        *lines, rest = (getattr(self.pending, "text", "") + text).split("\n")
        self.pending.text = rest
        if lines:
            with self.lock:
                self.target.write("\n".join(lines) + "\n")
                self.target.flush()
        return len(text)

    def flush(self) -> None:
        rest, self.pending.text = getattr(self.pending, "text", ""), ""
        with self.lock:
            self.target.write(rest)
            self.target.flush()
