"""Reading records from .txt/.jsonl/.csv inputs and writing outputs atomically.

Readers yield :class:`Record` s: the parsed record, its 0-based position, its 1-based line and the
texts of the selected fields (as paths into the record, so a writer can put redacted text back). A
malformed record raises :class:`~guardrail.errors.InputFormatError` with ``file:line``; with
``on_error="skip"`` it is counted and skipped.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from guardrail.errors import ConfigError, InputFormatError, OutputExistsError

__all__ = ["Reader", "Record", "atomic_output", "check_output_path", "open_reader"]

Kind = Literal["txt", "jsonl", "csv"]
FieldPath = tuple[str | int, ...]
_KINDS: dict[str, Kind] = {
    ".txt": "txt",
    ".text": "txt",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".csv": "csv",
}


@dataclass
class Record:
    """One input record and the texts selected from it."""

    index: int
    line: int
    data: Any
    fields: list[tuple[FieldPath, str]]
    id: str | int | None = None


@dataclass
class Reader:
    """Iterates the records of one input file."""

    path: Path
    kind: Kind
    fields: list[str]
    on_error: Literal["stop", "skip"] = "stop"
    skipped: int = 0
    header: list[str] = field(default_factory=list)

    def __iter__(self) -> Iterator[Record]:
        try:
            if self.kind == "txt":
                yield from self._txt()
            elif self.kind == "jsonl":
                yield from self._jsonl()
            else:
                yield from self._csv()
        except UnicodeDecodeError:
            raise InputFormatError(str(self.path), None, "not UTF-8 text (re-encode it as UTF-8)") from None

    def _open(self) -> io.TextIOWrapper:
        # utf-8-sig: a leading byte-order mark (common from Windows tools) is not part of the first record
        return open(self.path, encoding="utf-8-sig", newline="")

    def _txt(self) -> Iterator[Record]:
        with self._open() as f:
            for n, line in enumerate(f):
                text = line.rstrip("\r\n")
                yield Record(n, n + 1, line, [((), text)])

    def _jsonl(self) -> Iterator[Record]:
        index = 0
        with self._open() as f:
            for lineno, line in enumerate(f, start=1):
                if not line.strip():
                    continue
                try:
                    data = json.loads(line)
                    if not isinstance(data, dict):
                        raise ValueError("a JSON object per line is expected")
                    selected = _select_json(data, self.fields)
                except (ValueError, KeyError) as exc:
                    if self.on_error == "skip":
                        self.skipped += 1
                        continue
                    reason = str(exc) if isinstance(exc, KeyError | ConfigError) else _json_reason(exc)
                    raise InputFormatError(str(self.path), lineno, reason.strip("'\"")) from None
                rid = data.get("id")
                yield Record(index, lineno, data, selected, rid if isinstance(rid, str | int) else None)
                index += 1

    def _csv(self) -> Iterator[Record]:
        with self._open() as f:
            reader = csv.reader(f)
            try:
                self.header = next(reader)
            except StopIteration:
                return
            missing = [c for c in self.fields if c not in self.header]
            if missing:
                raise InputFormatError(
                    str(self.path),
                    1,
                    f"no column {missing[0]!r}; columns: {', '.join(self.header)} (use --field)",
                )
            cols = [self.header.index(c) for c in self.fields]
            id_col = self.header.index("id") if "id" in self.header else None
            index = 0
            for row in reader:
                lineno = reader.line_num
                if len(row) != len(self.header):
                    if self.on_error == "skip":
                        self.skipped += 1
                        continue
                    raise InputFormatError(
                        str(self.path), lineno, f"{len(row)} columns where the header has {len(self.header)}"
                    )
                rid = row[id_col] if id_col is not None else None
                yield Record(index, lineno, row, [((c,), row[c]) for c in cols], rid)
                index += 1


def _json_reason(exc: ValueError) -> str:
    if isinstance(exc, json.JSONDecodeError):
        return f"malformed JSON ({exc.msg} at column {exc.colno})"
    return str(exc)


def _select_json(data: dict[str, Any], fields: list[str]) -> list[tuple[FieldPath, str]]:
    if not fields:
        if isinstance(data.get("messages"), list):  # OpenAI chat format
            out: list[tuple[FieldPath, str]] = []
            for i, message in enumerate(data["messages"]):
                if isinstance(message, dict) and isinstance(message.get("content"), str):
                    out.append((("messages", i, "content"), message["content"]))
            return out
        fields = ["text"]
    out = []
    for name in fields:
        if name not in data:
            raise KeyError(f"no field {name!r} in this record (use --field to choose fields)")
        value = data[name]
        if value is None:
            continue
        if not isinstance(value, str):
            raise ConfigError(f"field {name!r} is {type(value).__name__}, not text")
        out.append(((name,), value))
    return out


def set_field(data: Any, path: FieldPath, value: str) -> Any:
    """Put ``value`` at ``path`` in a JSON record or CSV row (in place; callers pass a copy)."""
    target = data
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return data


def check_output_path(path: Path, *, option: str = "--output", directory: bool = False) -> None:
    """Refuse, before any work, an output path that cannot be written (one line: the path and the fix).

    Args:
        path: the output file (or dataset directory, with ``directory=True``).
        option: the CLI option that names it, for the message.
        directory: the output is a directory (then an existing directory is fine).

    Raises:
        ConfigError: the parent directory is missing, not a directory or not writable, or ``path`` is
            a directory where a file is expected.
    """
    if path.is_dir() and not directory:
        raise ConfigError(
            f"{path}: is a directory; give {option} a file path, e.g. {path / 'out'}{path.suffix}"
        )
    parent = path.parent
    if not parent.exists():
        raise ConfigError(
            f"{parent}: no such directory for {option} {path}; create it first (mkdir -p {parent}) "
            "or choose another path"
        )
    if not parent.is_dir():
        raise ConfigError(
            f"{parent}: not a directory, so {option} {path} cannot be written; choose another path"
        )
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ConfigError(
            f"{parent}: not writable, so {option} {path} cannot be written; choose a writable directory "
            f"or fix its permissions (chmod u+w {parent})"
        )


def open_reader(path: Path, *, fields: list[str], on_error: Literal["stop", "skip"] = "stop") -> Reader:
    """A reader for ``path`` chosen by its extension.

    Raises:
        ConfigError: the file is missing, a directory, or of an unsupported type.
    """
    kind = _KINDS.get(path.suffix.lower())
    if kind is None:
        raise ConfigError(
            f"{path}: unsupported file type {path.suffix or '(none)'!r}; use .txt, .jsonl or .csv"
        )
    if not path.exists():
        raise ConfigError(f"{path}: no such file")
    if path.is_dir():
        raise ConfigError(f"{path}: is a directory, not a file")
    if kind == "csv" and not fields:
        raise ConfigError(f"{path}: CSV input needs --field COLUMN for the text columns to process")
    if kind == "txt" and fields:
        raise ConfigError(f"{path}: --field does not apply to .txt input (each line is a record)")
    return Reader(path, kind, fields, on_error)


@contextlib.contextmanager
def atomic_output(path: Path, *, force: bool = False) -> Iterator[io.TextIOWrapper]:
    """Write ``path`` atomically: a temporary file beside it, fsynced and renamed on success.

    On any error the temporary file is removed and ``path`` is untouched.

    Raises:
        OutputExistsError: ``path`` exists and ``force`` is false.
    """
    if path.exists() and not force:
        raise OutputExistsError(f"{path}: exists; pass --force to overwrite it")
    if path.is_dir():
        raise ConfigError(f"{path}: is a directory; give a file path for the output")
    path.parent.mkdir(parents=True, exist_ok=True)
    # new outputs are private (0600: redacted data may keep residual personal data); an overwritten
    # file keeps its mode
    mode = path.stat().st_mode & 0o777 if path.exists() else 0o600
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
