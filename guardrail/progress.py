"""Progress of long CLI runs on stderr: a bar with a total and an ETA on a terminal, one plain line every
few seconds elsewhere (CI logs, ``2> run.log``), nothing with ``--quiet``.

The total comes from a fast pre-count (:func:`count_records`: newlines counted in 1 MiB blocks, Parquet
row counts from the file's metadata); a total that turns out wrong only makes the ETA approximate. Progress
lines carry counts and rates, never data.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

__all__ = ["Progress", "count_records"]

_BLOCK = 1 << 20


def count_records(path: Path, kind: str) -> int | None:
    """About how many records ``path`` holds (``kind``: ``txt``, ``csv``, ``jsonl...``, ``parquet``), or
    ``None`` when it cannot be told cheaply (a saved Hugging Face dataset, an unreadable file)."""
    try:
        if kind == "parquet":
            import pyarrow.parquet as pq

            return int(pq.ParquetFile(path).metadata.num_rows)
        if not path.is_file():
            return None
        lines, last = 0, b"\n"
        with path.open("rb") as f:
            while block := f.read(_BLOCK):
                lines += block.count(b"\n")
                last = block[-1:]
        lines += last != b"\n"  # a last line without its newline
        return max(lines - 1, 0) if kind == "csv" else lines  # CSV: the header row
    except Exception:  # noqa: BLE001 - a count is a nicety: without one the bar has no total
        return None


def _duration(seconds: float) -> str:
    seconds = int(seconds + 0.5)
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}"


class Progress:
    """Reports ``done`` out of ``total`` records.

    Args:
        label: what is being done, e.g. ``"redacting train.jsonl"`` (a file name, never content).
        total: the expected number of records (``None``: unknown, a count without percentage or ETA).
        stream: where to write (stderr).
        terminal: a live bar (``True``) or plain lines every ``interval`` seconds (``False``).
        quiet: write nothing.
        interval: seconds between plain lines.
        clock: a monotonic clock (tests pass their own).
        console: the rich console that draws the bar (terminal mode; default: one on ``stream``).
    """

    def __init__(
        self,
        label: str,
        *,
        total: int | None,
        stream: TextIO,
        terminal: bool,
        quiet: bool = False,
        interval: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
        console: Any = None,
    ) -> None:
        self.label = label
        self.total = total
        self._stream = stream
        self._quiet = quiet
        self._interval = interval
        self._clock = clock
        self._started = clock()
        self._last_line = self._started
        self._lines = 0
        self._done = 0
        self._reported = -1
        self._first: tuple[float, int] | None = None  # the first update: rates start there, after loading
        self._bar: Any = None
        self._task: Any = None
        if terminal and not quiet:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )
            from rich.progress import Progress as Bar

            self._bar = Bar(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("records"),
                TimeElapsedColumn(),
                TextColumn("ETA"),
                TimeRemainingColumn(),
                console=console or Console(file=stream, highlight=False),
                transient=True,
            )
            self._task = self._bar.add_task(label, total=total)
            self._bar.start()

    def __call__(self, done: int) -> None:
        self.update(done)

    def update(self, done: int) -> None:
        """``done`` records so far."""
        self._done = done
        if self._quiet:
            return
        if self._bar is not None:
            total = self.total if self.total is None or done <= self.total else done
            self._bar.update(self._task, completed=done, total=total)
            return
        now = self._clock()
        if self._first is None:
            self._first = (now, done)
            self._last_line = now
            return
        if now - self._last_line >= self._interval:
            self._last_line = now
            self._write(done, now)

    def finish(self, done: int | None = None) -> None:
        """The run ended (with ``done`` records, default the last count): the bar goes; a log that had
        progress lines gets a last one. Safe to call twice."""
        done = self._done if done is None else done
        if self._bar is not None:
            self._bar.update(self._task, completed=done, total=done)
            self._bar.stop()
            self._bar = None
        elif not self._quiet and self._lines and done != self._reported:
            self.total = done
            self._write(done, self._clock())

    def _write(self, done: int, now: float) -> None:
        elapsed = now - self._started
        since, base = self._first or (self._started, 0)
        rate = (done - base) / max(now - since, 1e-9)
        line = f"{self.label}: {done:,}"
        if self.total:
            line += f" of {self.total:,} records ({min(done / self.total, 1.0):.0%})"
        else:
            line += " records"
        line += f", {rate:,.0f} records/s, {_duration(elapsed)} elapsed"
        if self.total and done < self.total and rate > 0:
            line += f", about {_duration((self.total - done) / rate)} left"
        self._stream.write(line + "\n")
        self._stream.flush()
        self._lines += 1
        self._reported = done
