"""Fine-tuning and RAG dataset formats: detection, streaming readers and atomic writers.

Supported: JSONL in OpenAI chat (``messages[]`` with ``role``/``content``), Alpaca
(``instruction``/``input``/``output``) or plain shape, CSV, Parquet, and Hugging Face datasets saved
with ``Dataset.save_to_disk``. Readers stream with bounded memory (JSONL/CSV line by line, Parquet
and Hugging Face in row batches) and yield :class:`DatasetRecord` s whose ``texts`` locate each
selected text inside the record, so a writer can put the redacted text back with
:func:`guardrail.io.set_field`. Writers keep the input's format and schema and write atomically.

For Parquet and Hugging Face inputs a record's ``line`` is its 1-based row number. pyarrow and
datasets are optional (``pip install 'guardrail-privacy[datasets]'``) and imported only when used.
"""

from __future__ import annotations

import contextlib
import csv
import importlib
import io
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, get_args

from guardrail.errors import ConfigError, InputFormatError, OutputExistsError
from guardrail.io import FieldPath, atomic_output, set_field

if TYPE_CHECKING:
    import datasets

__all__ = [
    "DatasetFormat",
    "DatasetReader",
    "DatasetRecord",
    "DatasetWriter",
    "FieldRules",
    "detect_format",
    "iter_records",
    "open_writer",
    "redact_dataset",
]

DatasetFormat = Literal["jsonl-chat", "jsonl-alpaca", "jsonl", "csv", "parquet", "hf-disk"]
OnError = Literal["stop", "skip"]
_Shape = Literal["chat", "alpaca", "plain"]

_FORMATS: tuple[str, ...] = get_args(DatasetFormat)
_JSONL_SHAPES: dict[str, _Shape] = {"jsonl-chat": "chat", "jsonl-alpaca": "alpaca", "jsonl": "plain"}
_ALPACA_FIELDS = ("instruction", "input", "output")
_BATCH = 1000


@dataclass(frozen=True, slots=True)
class FieldRules:
    """Which texts of a record are processed.

    Attributes:
        fields: top-level text fields to process. Empty means the format's default: ``text`` for
            plain JSONL, CSV, Parquet and Hugging Face data; ``instruction``, ``input`` and ``output``
            for Alpaca data. For chat data the messages are always selected (by role) and these
            fields are processed as well.
        roles: chat roles whose message contents are processed; ``system`` is left alone by default.
        skip: top-level fields never touched (e.g. ``messages`` to process only ``fields``).
    """

    fields: tuple[str, ...] = ()
    roles: tuple[str, ...] = ("user", "assistant")
    skip: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for name in ("fields", "roles", "skip"):
            value = getattr(self, name)
            # a bare string would be read as a tuple of one-letter names
            if not isinstance(value, tuple) or not all(isinstance(v, str) for v in value):
                raise ConfigError(f"FieldRules.{name} must be a tuple of strings, e.g. ({value!r},)")


@dataclass(frozen=True, slots=True)
class DatasetRecord:
    """One record of a dataset and the texts selected from it.

    Attributes:
        index: 0-based position among the records read (skipped records not counted).
        line: 1-based line (JSONL, CSV) or row (Parquet, Hugging Face) in the input.
        data: the record as a dict (a CSV row maps column names to values).
        texts: ``(path, text)`` pairs; ``path`` locates the text in ``data``, e.g.
            ``("messages", 2, "content")``.
    """

    index: int
    line: int
    data: dict[str, Any]
    texts: list[tuple[FieldPath, str]]


class _BadRecord(Exception):
    """A record that does not fit its format; ``reason`` never quotes the record's content."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _optional(module: str) -> Any:
    try:
        return importlib.import_module(module)
    except ImportError:
        # not a detector, so not DetectorUnavailable: the fix is an install, named in the message
        raise ConfigError(
            f"{module.partition('.')[0]} is needed for this dataset format: "
            "pip install 'guardrail-privacy[datasets]'"
        ) from None


# --- detection ---------------------------------------------------------------------------------


def detect_format(path: str | os.PathLike[str]) -> DatasetFormat:
    """The format of ``path``: by extension, by the first non-empty JSONL record, or a saved dataset.

    Raises:
        ConfigError: ``path`` is missing or of an unsupported type.
        InputFormatError: the first JSONL record is not a JSON object.
    """
    p = Path(path)
    if not p.exists():
        raise ConfigError(f"{p}: no such file or directory")
    if p.is_dir():
        if (p / "dataset_dict.json").exists():
            raise ConfigError(f"{p}: a DatasetDict; give one split's directory, e.g. {p / 'train'}")
        if (p / "state.json").exists() and (p / "dataset_info.json").exists():
            return "hf-disk"
        raise ConfigError(f"{p}: a directory but not a dataset saved with Dataset.save_to_disk")
    suffix = p.suffix.lower()
    if suffix in {".parquet", ".pq"}:
        return "parquet"
    if suffix == ".csv":
        return "csv"
    if suffix in {".jsonl", ".ndjson"}:
        return _peek_jsonl(p)
    raise ConfigError(
        f"{p}: unsupported file type {suffix or '(none)'!r}; use .jsonl, .csv, .parquet "
        "or a directory saved with Dataset.save_to_disk"
    )


def _peek_jsonl(path: Path) -> DatasetFormat:
    """The shape of the first well-formed record (malformed ones are the reader's to report or skip)."""
    try:
        with _open_text(path) as f:
            for line in f:
                if not line.strip():
                    continue
                try:
                    data = _parse_json(line)
                except _BadRecord:
                    continue
                shape = _shape_of(data)
                return "jsonl-chat" if shape == "chat" else "jsonl-alpaca" if shape == "alpaca" else "jsonl"
    except UnicodeDecodeError:
        raise InputFormatError(str(path), None, "not UTF-8 text (re-encode it as UTF-8)") from None
    return "jsonl"


def _shape_of(data: Mapping[str, Any]) -> _Shape:
    messages = data.get("messages")
    if isinstance(messages, list) and all(
        isinstance(m, dict) and "role" in m and "content" in m for m in messages
    ):
        return "chat"
    if "instruction" in data and "output" in data:
        return "alpaca"
    return "plain"


def _columnar_shape(schema: Any) -> _Shape:
    pa = _optional("pyarrow")
    names = set(schema.names)
    if "messages" in names:
        kind = schema.field("messages").type
        if (pa.types.is_list(kind) or pa.types.is_large_list(kind)) and pa.types.is_struct(kind.value_type):
            members = {kind.value_type.field(i).name for i in range(kind.value_type.num_fields)}
            if {"role", "content"} <= members:
                return "chat"
    if {"instruction", "output"} <= names:
        return "alpaca"
    return "plain"


# --- selection ---------------------------------------------------------------------------------


def _defaults(shape: _Shape, rules: FieldRules) -> tuple[tuple[str, ...], frozenset[str]]:
    """The fields to process and those of them that may be absent."""
    if rules.fields:
        return rules.fields, frozenset()
    if shape == "alpaca":
        return _ALPACA_FIELDS, frozenset({"input"})  # Alpaca records often leave out an empty input
    if shape == "chat":
        return (), frozenset()
    return ("text",), frozenset()


def _select(data: Mapping[str, Any], shape: _Shape, rules: FieldRules) -> list[tuple[FieldPath, str]]:
    out: list[tuple[FieldPath, str]] = []
    if shape == "chat" and "messages" not in rules.skip:
        messages = data.get("messages")
        if not isinstance(messages, list):
            raise _BadRecord("no 'messages' list in this record")
        for i, message in enumerate(messages):
            if not isinstance(message, dict) or not isinstance(message.get("role"), str):
                raise _BadRecord(f"message {i} has no 'role'")
            if message["role"] not in rules.roles:
                continue
            content = message.get("content")
            if content is None:  # e.g. an assistant turn with tool calls only
                continue
            if isinstance(content, str):
                out.append((("messages", i, "content"), content))
            elif isinstance(content, list):  # multimodal parts: only text parts carry text
                for j, part in enumerate(content):
                    if isinstance(part, dict) and isinstance(part.get("text"), str):
                        out.append((("messages", i, "content", j, "text"), part["text"]))
            else:
                raise _BadRecord(f"message {i} content is {type(content).__name__}, not text")
    names, optional = _defaults(shape, rules)
    for name in names:
        if name in rules.skip:
            continue
        if name not in data:
            if name in optional:
                continue
            raise _BadRecord(
                f"no field {name!r} in this record (choose the fields with --field NAME; in Python, "
                "FieldRules(fields=[...]))"
            )
        value = data[name]
        if value is None:
            continue
        if not isinstance(value, str):
            raise _BadRecord(f"field {name!r} is {type(value).__name__}, not text")
        out.append(((name,), value))
    return out


def _check_columns(source: str, columns: list[str], shape: _Shape, rules: FieldRules) -> None:
    names, optional = _defaults(shape, rules)
    missing = [n for n in names if n not in columns and n not in optional and n not in rules.skip]
    if missing:
        raise InputFormatError(
            source,
            1,
            f"no column {missing[0]!r}; columns: {', '.join(columns)} (choose the columns with --field "
            "COLUMN; in Python, FieldRules(fields=[...]))",
        )


def _parse_json(line: str) -> dict[str, Any]:
    try:
        data = json.loads(line)
    except json.JSONDecodeError as exc:
        raise _BadRecord(f"malformed JSON ({exc.msg} at column {exc.colno})") from None
    if not isinstance(data, dict):
        raise _BadRecord("a JSON object per line is expected")
    return data


def _open_text(path: Path) -> io.TextIOWrapper:
    # utf-8-sig: a leading byte-order mark (common from Windows tools) is not part of the first record
    return open(path, encoding="utf-8-sig", newline="")


# --- reading -----------------------------------------------------------------------------------


class DatasetReader(Iterator[DatasetRecord]):
    """Streams the records of one dataset; ``skipped`` counts malformed records skipped so far."""

    def __init__(self, path: Path, format: DatasetFormat, rules: FieldRules, on_error: OnError) -> None:
        self.path = path
        self.format: DatasetFormat = format
        self.rules = rules
        self.on_error: OnError = on_error
        self.skipped = 0
        #: called with ``(line, reason, raw)`` for each skipped record (raw: the JSONL line, the CSV row
        #: or the columnar row), e.g. to quarantine it; never called when ``on_error`` is ``"stop"``
        self.on_reject: Callable[[int, str, Any], None] | None = None
        #: the line (or row) of the last record read, good or bad: where a resumed run starts
        self.position = 0
        self._after = 0
        self._index = 0
        self._records = self._read()

    def resume_after(self, position: int, index: int) -> None:
        """Start after line (or row) ``position``, numbering the next record ``index``; before reading."""
        if self.position:
            raise ConfigError("resume_after must be called before the first record is read")
        self._after, self._index, self.position = position, index, position

    def __iter__(self) -> DatasetReader:
        return self

    def __next__(self) -> DatasetRecord:
        return next(self._records)

    def _read(self) -> Iterator[DatasetRecord]:
        try:
            if self.format in _JSONL_SHAPES:
                yield from self._jsonl(_JSONL_SHAPES[self.format])
            elif self.format == "csv":
                yield from self._csv()
            elif self.format == "parquet":
                yield from self._parquet()
            else:
                yield from self._hf()
        except UnicodeDecodeError:
            raise InputFormatError(str(self.path), None, "not UTF-8 text (re-encode it as UTF-8)") from None

    def _record(
        self, line: int, data: dict[str, Any], shape: _Shape, raw: Any = None
    ) -> DatasetRecord | None:
        self.position = line
        try:
            texts = _select(data, shape, self.rules)
        except _BadRecord as exc:
            self._bad(line, exc.reason, data if raw is None else raw)
            return None
        record = DatasetRecord(self._index, line, data, texts)
        self._index += 1
        return record

    def _bad(self, line: int, reason: str, raw: Any) -> None:
        self.position = line
        if self.on_error == "skip":
            self.skipped += 1
            if self.on_reject is not None:
                self.on_reject(line, reason, raw)
            return
        raise InputFormatError(str(self.path), line, reason)

    def _jsonl(self, shape: _Shape) -> Iterator[DatasetRecord]:
        with _open_text(self.path) as f:
            for lineno, line in enumerate(f, start=1):
                if lineno <= self._after or not line.strip():
                    continue
                try:
                    data = _parse_json(line)
                except _BadRecord as exc:
                    self._bad(lineno, exc.reason, line.rstrip("\r\n"))
                    continue
                if (record := self._record(lineno, data, shape, line.rstrip("\r\n"))) is not None:
                    yield record

    def _csv(self) -> Iterator[DatasetRecord]:
        with _open_text(self.path) as f:
            reader = csv.reader(f)
            header = next(reader, None)
            if header is None:
                return
            if len(set(header)) != len(header):
                raise InputFormatError(str(self.path), 1, "duplicate column names in the header")
            _check_columns(str(self.path), header, "plain", self.rules)
            for row in reader:
                if reader.line_num <= self._after:
                    continue
                if len(row) != len(header):
                    self._bad(reader.line_num, f"{len(row)} columns where the header has {len(header)}", row)
                    continue
                data = dict(zip(header, row, strict=True))
                if (record := self._record(reader.line_num, data, "plain", row)) is not None:
                    yield record

    def _parquet(self) -> Iterator[DatasetRecord]:
        pq = _optional("pyarrow.parquet")
        try:
            parquet = pq.ParquetFile(self.path)
        except Exception:  # noqa: BLE001 - pyarrow raises several types for a damaged file
            raise InputFormatError(str(self.path), None, "not a readable Parquet file") from None
        with contextlib.closing(parquet):
            yield from self._rows(parquet.schema_arrow, parquet.iter_batches(batch_size=_BATCH))

    def _hf(self) -> Iterator[DatasetRecord]:
        dataset = _load_hf(self.path)
        yield from self._rows(
            dataset.features.arrow_schema, dataset.with_format("arrow").iter(batch_size=_BATCH)
        )

    def _rows(self, schema: Any, batches: Iterator[Any]) -> Iterator[DatasetRecord]:
        shape = _columnar_shape(schema)
        _check_columns(str(self.path), list(schema.names), shape, self.rules)
        row = 0
        for batch in batches:
            if row + batch.num_rows <= self._after:
                row += batch.num_rows
                continue
            for data in batch.to_pylist():
                row += 1
                if row <= self._after:
                    continue
                if (record := self._record(row, data, shape)) is not None:
                    yield record


def _load_hf(path: Path) -> Any:
    datasets = _optional("datasets")
    loaded = datasets.load_from_disk(str(path))
    if not isinstance(loaded, datasets.Dataset):
        raise ConfigError(f"{path}: a DatasetDict; give one split's directory")
    return loaded


def iter_records(
    path: str | os.PathLike[str],
    *,
    format: DatasetFormat | None = None,
    rules: FieldRules = FieldRules(),
    on_error: OnError = "stop",
) -> DatasetReader:
    """Stream the records of a dataset with bounded memory.

    Args:
        path: a .jsonl, .csv or .parquet file, or a directory saved with ``Dataset.save_to_disk``.
        format: force a format instead of detecting it.
        rules: which texts to select.
        on_error: ``"stop"`` raises on the first malformed record; ``"skip"`` counts it in
            ``reader.skipped`` and goes on.

    Raises:
        ConfigError: an unknown format or option, a missing file or optional dependency.
        InputFormatError: a malformed record (``file:line`` and the reason, never the content).
    """
    p = Path(path)
    if on_error not in get_args(OnError):
        raise ConfigError(f"on_error must be 'stop' or 'skip', not {on_error!r}")
    if format is None:
        format = detect_format(p)
    elif format not in _FORMATS:
        raise ConfigError(f"unknown dataset format {format!r}; known: {', '.join(_FORMATS)}")
    elif not p.exists():
        raise ConfigError(f"{p}: no such file or directory")
    return DatasetReader(p, format, rules, on_error)


# --- writing -----------------------------------------------------------------------------------


@dataclass
class DatasetWriter:
    """Writes records, in order, to an output opened by :func:`open_writer`."""

    format: DatasetFormat
    _emit: Callable[[Mapping[str, Any]], None] = field(repr=False)
    written: int = 0

    def write(self, data: Mapping[str, Any]) -> None:
        """Append one record (a dict as yielded in :attr:`DatasetRecord.data`)."""
        self._emit(data)
        self.written += 1


class _ArrowRows:
    """Buffers rows and writes them in batches with one schema (the input's, or the first batch's)."""

    def __init__(self, schema: Any, batch_size: int, open_sink: Callable[[Any], Any]) -> None:
        self.schema = schema
        self._batch_size = batch_size
        self._open_sink = open_sink
        self._sink: Any = None
        self._rows: list[dict[str, Any]] = []

    def append(self, data: Mapping[str, Any]) -> None:
        if self.schema is not None and not set(data) <= set(self.schema.names):
            extra = sorted(set(data) - set(self.schema.names))
            raise ConfigError(f"record has fields not in the output schema: {', '.join(extra)}")
        self._rows.append(dict(data))
        if len(self._rows) >= self._batch_size:
            self.flush()

    def flush(self) -> None:
        pa = _optional("pyarrow")
        if self.schema is None:
            self.schema = pa.Table.from_pylist(self._rows).schema
        if self._sink is None:
            self._sink = self._open_sink(self.schema)
        if self._rows:
            self._sink.write_table(pa.Table.from_pylist(self._rows, schema=self.schema))
        self._rows = []

    def close(self) -> None:
        if self._sink is not None:
            self._sink.close()
            self._sink = None


@contextlib.contextmanager
def open_writer(
    path: str | os.PathLike[str],
    format: DatasetFormat,
    *,
    like: str | os.PathLike[str] | None = None,
    force: bool = False,
    batch_size: int = _BATCH,
) -> Iterator[DatasetWriter]:
    """Open ``path`` for writing records in ``format``, atomically.

    The output appears only when the block ends without an error: a temporary file (or directory
    for ``hf-disk``) beside ``path`` is written, fsynced and renamed; on error it is removed and
    ``path`` is untouched. With ``like`` (the input), the CSV header, Parquet schema or Hugging Face
    features are taken from it, so the output has the input's columns and types.

    Raises:
        OutputExistsError: ``path`` exists and ``force`` is false.
        ConfigError: an unknown format, or a record with fields the output schema does not have.
    """
    out = Path(path)
    source = Path(like) if like is not None else None
    if format not in _FORMATS:
        raise ConfigError(f"unknown dataset format {format!r}; known: {', '.join(_FORMATS)}")
    if format in _JSONL_SHAPES:
        with atomic_output(out, force=force) as f:

            def emit(data: Mapping[str, Any]) -> None:
                f.write(json.dumps(data, ensure_ascii=False) + "\n")

            yield DatasetWriter(format, emit)
    elif format == "csv":
        header = _csv_header(source) if source is not None else None
        with atomic_output(out, force=force) as f:
            yield DatasetWriter(format, _csv_emitter(f, header))
    elif format == "parquet":
        pq = _optional("pyarrow.parquet")
        schema = pq.read_schema(source) if source is not None else None
        with _atomic_file(out, force=force) as tmp:
            rows = _ArrowRows(schema, batch_size, lambda s: pq.ParquetWriter(tmp, s))
            try:
                yield DatasetWriter(format, rows.append)
                rows.flush()
            finally:
                rows.close()
    else:
        yield from _hf_writer(out, source, force=force, batch_size=batch_size)


def _csv_header(path: Path) -> list[str] | None:
    with _open_text(path) as f:
        return next(csv.reader(f), None)


def _csv_emitter(f: io.TextIOWrapper, header: list[str] | None) -> Callable[[Mapping[str, Any]], None]:
    state: dict[str, csv.DictWriter[str]] = {}

    def emit(data: Mapping[str, Any]) -> None:
        if "writer" not in state:
            state["writer"] = csv.DictWriter(f, fieldnames=header or list(data))
            state["writer"].writeheader()
        try:
            state["writer"].writerow(data)
        except ValueError:
            raise ConfigError("record has fields not in the CSV header") from None

    return emit


def _hf_writer(out: Path, source: Path | None, *, force: bool, batch_size: int) -> Iterator[DatasetWriter]:
    pa = _optional("pyarrow")
    datasets = _optional("datasets")
    schema = _load_hf(source).features.arrow_schema if source is not None else None
    with _atomic_dir(out, force=force) as work:
        arrow = work / "data.arrow"
        # the IPC stream format is what Dataset.from_file memory-maps; the schema metadata carries
        # the input's features
        rows = _ArrowRows(schema, batch_size, lambda s: pa.ipc.new_stream(str(arrow), s))
        try:
            yield DatasetWriter("hf-disk", rows.append)
            rows.flush()
        finally:
            rows.close()
        dataset = datasets.Dataset.from_file(str(arrow))
        dataset.save_to_disk(str(work / "out"))
        del dataset


@contextlib.contextmanager
def _atomic_file(path: Path, *, force: bool) -> Iterator[Path]:
    if path.exists() and not force:
        raise OutputExistsError(f"{path}: exists; pass force=True to overwrite it")
    if path.is_dir():
        raise ConfigError(f"{path}: is a directory; give a file path for the output")
    path.parent.mkdir(parents=True, exist_ok=True)
    # new outputs are private (redacted data may keep residual personal data); an overwritten file
    # keeps its mode
    mode = path.stat().st_mode & 0o777 if path.exists() else 0o600
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        os.chmod(tmp, mode)
        yield tmp
        _fsync(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def _atomic_dir(path: Path, *, force: bool) -> Iterator[Path]:
    """A work directory beside ``path``; its ``out`` subdirectory becomes ``path`` on success."""
    if path.exists() and not force:
        raise OutputExistsError(f"{path}: exists; pass force=True to overwrite it")
    if path.exists() and not path.is_dir():
        raise ConfigError(f"{path}: is a file; an hf-disk output is a directory")
    path.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    try:
        yield work
        done = work / "out"
        for root, _, files in os.walk(done):
            os.chmod(root, 0o700)  # private, like a new output file
            for name in files:
                os.chmod(os.path.join(root, name), 0o600)
                _fsync(Path(root, name))
        if path.exists():
            # a directory cannot be replaced in one rename: move the old one aside first
            os.replace(path, work / "old")
        os.replace(done, path)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# --- Hugging Face datasets ---------------------------------------------------------------------


def _canary_gate(canaries: Any, rows: list[dict[str, Any]], indices: list[int]) -> None:
    from guardrail.canaries.registry import strings_of
    from guardrail.datasets.run import GateFailed, flagged_record

    flagged = []
    for row, index in zip(rows, indices, strict=True):
        found = canaries.canaries_in(strings_of(row))
        if found:
            flagged.append(flagged_record(DatasetRecord(index, index + 1, row, []), dict.fromkeys(found, 1)))
    if flagged:
        shown = "; ".join(
            f"row {r.line}"
            + (f" (id {r.id})" if r.id is not None else "")
            + f": canary {', '.join(r.entities)}"
            for r in flagged[:10]
        )
        raise GateFailed(f"gate failed: the redacted dataset still holds canary values: {shown}", flagged)


def redact_dataset(
    dataset: datasets.Dataset,
    redact_text: Callable[[list[str]], list[str]],
    rules: FieldRules = FieldRules(),
    *,
    batch_size: int = _BATCH,
    canaries: Any = None,
) -> datasets.Dataset:
    """A copy of ``dataset`` with the selected texts replaced by ``redact_text`` (called per batch).

    ``redact_text`` takes the texts of a batch and returns their redacted versions, in order. Other
    fields, the features and the dataset's format are kept. Results are never loaded from the
    datasets cache, so a changed ``redact_text`` always applies.

    ``canaries`` (a :class:`~guardrail.canaries.CanaryMatcher`; by default that of a
    :func:`~guardrail.datasets.run.text_redactor` made with a keyring) is the canary gate: a row of the
    result that still holds a canary value raises :class:`~guardrail.datasets.run.GateFailed`.

    Raises:
        InputFormatError: a row does not fit the selected shape (named by its 1-based row).
        ConfigError: ``redact_text`` returned a different number of texts than it was given.
        GateFailed: a redacted row still holds a canary value (named by its row and canary id).
    """
    if canaries is None:
        canaries = getattr(redact_text, "canaries", None)
    pa = _optional("pyarrow")
    schema = dataset.features.arrow_schema
    shape = _columnar_shape(schema)
    _check_columns("<dataset>", list(schema.names), shape, rules)

    def redact_batch(table: Any, indices: list[int]) -> Any:
        rows = table.to_pylist()
        selected = []
        for row, index in zip(rows, indices, strict=True):
            try:
                selected.append(_select(row, shape, rules))
            except _BadRecord as exc:
                raise InputFormatError("<dataset>", index + 1, exc.reason) from None
        texts = [text for pairs in selected for _, text in pairs]
        redacted = redact_text(texts)
        if len(redacted) != len(texts):
            raise ConfigError(f"redact_text returned {len(redacted)} texts for {len(texts)}")
        replacements = iter(redacted)
        for row, pairs in zip(rows, selected, strict=True):
            for path, _ in pairs:
                set_field(row, path, next(replacements))
        if canaries is not None:
            _canary_gate(canaries, rows, indices)
        return pa.Table.from_pylist(rows, schema=table.schema)

    fmt = dataset.format
    result = dataset.with_format("arrow").map(
        redact_batch,
        batched=True,
        batch_size=batch_size,
        with_indices=True,
        features=dataset.features,
        load_from_cache_file=False,
    )
    return result.with_format(
        fmt["type"],
        columns=fmt["columns"],
        output_all_columns=fmt["output_all_columns"],
        **fmt["format_kwargs"],
    )
