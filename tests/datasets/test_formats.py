"""Dataset formats: detection, field rules, streaming reads and atomic round trips."""

from __future__ import annotations

import copy
import csv
import json
import tracemalloc
from pathlib import Path
from typing import Any

import pytest

from guardrail.datasets import FieldRules, detect_format, iter_records, open_writer, redact_dataset
from guardrail.datasets.formats import DatasetFormat
from guardrail.errors import ConfigError, InputFormatError, OutputExistsError
from guardrail.io import set_field

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")
datasets = pytest.importorskip("datasets")

CHAT = {
    "messages": [
        {"role": "system", "content": "You are helpful."},
        {"role": "user", "content": "I am Alice Smith."},
        {"role": "assistant", "content": "Hello Alice."},
    ],
    "source": "forum",
}
ALPACA = {"instruction": "Summarise", "input": "Bob lives in Paris.", "output": "Bob: Paris.", "id": 7}


def _jsonl(path: Path, records: list[Any]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def _rows(n: int) -> list[dict[str, Any]]:
    return [{"id": i, "text": f"note {i} for Carol", "score": i / 2, "tag": f"t{i % 3}"} for i in range(n)]


def _hf_dir(path: Path, rows: list[dict[str, Any]]) -> Path:
    datasets.Dataset.from_list(rows).save_to_disk(str(path))
    return path


def _upper_copy(path: Path, out: Path, fmt: DatasetFormat) -> None:
    with open_writer(out, fmt, like=path) as writer:
        for record in iter_records(path, format=fmt):
            data = copy.deepcopy(record.data)
            for field_path, text in record.texts:
                set_field(data, field_path, text.upper())
            writer.write(data)


def _leftovers(directory: Path) -> list[str]:
    return [p.name for p in directory.iterdir() if p.name.startswith(".")]


class TestDetectFormat:
    """Formats are told by extension, by the first JSONL record, or by a saved dataset's files."""

    @pytest.mark.parametrize(
        ("name", "content", "expected"),
        [
            ("chat.jsonl", [CHAT], "jsonl-chat"),
            ("alpaca.jsonl", [ALPACA], "jsonl-alpaca"),
            ("plain.ndjson", [{"text": "x"}], "jsonl"),
            ("empty.jsonl", [], "jsonl"),
        ],
        ids=["chat", "alpaca", "plain", "empty"],
    )
    def test_jsonl_by_first_record(
        self, tmp_path: Path, name: str, content: list[Any], expected: str
    ) -> None:
        path = tmp_path / name
        path.write_text("\n\n" + "".join(json.dumps(r) + "\n" for r in content), encoding="utf-8")
        assert detect_format(path) == expected

    def test_csv_parquet_and_hf(self, tmp_path: Path) -> None:
        (tmp_path / "a.csv").write_text("text\nx\n", encoding="utf-8")
        pq.write_table(pa.Table.from_pylist(_rows(2)), tmp_path / "a.parquet")
        assert detect_format(tmp_path / "a.csv") == "csv"
        assert detect_format(tmp_path / "a.parquet") == "parquet"
        assert detect_format(_hf_dir(tmp_path / "hf", _rows(2))) == "hf-disk"

    @pytest.mark.parametrize(
        ("name", "match"),
        [
            ("a.xml", "unsupported file type"),
            ("missing.jsonl", "no such file"),
            ("plain_dir", "save_to_disk"),
        ],
        ids=["extension", "missing", "directory"],
    )
    def test_unsupported(self, tmp_path: Path, name: str, match: str) -> None:
        (tmp_path / "a.xml").write_text("<a/>", encoding="utf-8")
        (tmp_path / "plain_dir").mkdir()
        with pytest.raises(ConfigError, match=match):
            detect_format(tmp_path / name)

    def test_forced_format(self, tmp_path: Path) -> None:
        path = _jsonl(tmp_path / "a.jsonl", [CHAT])
        records = list(iter_records(path, format="jsonl", rules=FieldRules(fields=("source",))))
        assert records[0].texts == [(("source",), "forum")]


class TestFieldRules:
    """Chat roles and Alpaca fields choose the texts; everything else is left alone."""

    def test_chat_defaults_select_user_and_assistant(self, tmp_path: Path) -> None:
        (record,) = iter_records(_jsonl(tmp_path / "c.jsonl", [CHAT]))
        assert record.texts == [
            (("messages", 1, "content"), "I am Alice Smith."),
            (("messages", 2, "content"), "Hello Alice."),
        ]

    def test_chat_roles_and_extra_fields(self, tmp_path: Path) -> None:
        rules = FieldRules(fields=("source",), roles=("system",))
        (record,) = iter_records(_jsonl(tmp_path / "c.jsonl", [CHAT]), rules=rules)
        assert record.texts == [(("messages", 0, "content"), "You are helpful."), (("source",), "forum")]

    def test_chat_write_back_leaves_system_untouched(self, tmp_path: Path) -> None:
        path = _jsonl(tmp_path / "c.jsonl", [CHAT])
        _upper_copy(path, tmp_path / "out.jsonl", "jsonl-chat")
        (out,) = [
            json.loads(line) for line in (tmp_path / "out.jsonl").read_text(encoding="utf-8").splitlines()
        ]
        assert [m["content"] for m in out["messages"]] == [
            "You are helpful.",
            "I AM ALICE SMITH.",
            "HELLO ALICE.",
        ]
        assert out["source"] == "forum"

    def test_alpaca_fields(self, tmp_path: Path) -> None:
        no_input = {"instruction": "Say hi", "output": "Hi Dan"}
        records = list(iter_records(_jsonl(tmp_path / "a.jsonl", [ALPACA, no_input])))
        assert [dict(r.texts) for r in records] == [
            {("instruction",): "Summarise", ("input",): "Bob lives in Paris.", ("output",): "Bob: Paris."},
            {("instruction",): "Say hi", ("output",): "Hi Dan"},
        ]

    def test_skip(self, tmp_path: Path) -> None:
        rules = FieldRules(skip=("instruction",))
        (record,) = iter_records(_jsonl(tmp_path / "a.jsonl", [ALPACA]), rules=rules)
        assert [p for p, _ in record.texts] == [("input",), ("output",)]

    def test_bare_string_rejected(self) -> None:
        with pytest.raises(ConfigError, match="tuple of strings"):
            FieldRules(fields="text")  # type: ignore[arg-type]


class TestRoundTrips:
    """Records, order and other fields survive read -> redact -> write, in every format."""

    def test_csv(self, tmp_path: Path) -> None:
        src = tmp_path / "in.csv"
        with open(src, "w", encoding="utf-8", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=["id", "text", "tag"])
            writer.writeheader()
            writer.writerows({"id": r["id"], "text": r["text"], "tag": r["tag"]} for r in _rows(5))
        _upper_copy(src, tmp_path / "out.csv", "csv")
        with open(tmp_path / "out.csv", encoding="utf-8", newline="") as f:
            out = list(csv.DictReader(f))
        assert [r["id"] for r in out] == [str(i) for i in range(5)]
        assert out[3] == {"id": "3", "text": "NOTE 3 FOR CAROL", "tag": "t0"}
        assert _leftovers(tmp_path) == []

    def test_parquet_keeps_schema(self, tmp_path: Path) -> None:
        src = tmp_path / "in.parquet"
        table = pa.Table.from_pylist(
            _rows(2500),
            schema=pa.schema(
                [("id", pa.int32()), ("text", pa.string()), ("score", pa.float64()), ("tag", pa.string())]
            ),
        )
        pq.write_table(table, src, row_group_size=700)
        _upper_copy(src, tmp_path / "out.parquet", "parquet")
        out = pq.read_table(tmp_path / "out.parquet")
        assert out.schema.equals(table.schema)
        assert out.column("id").to_pylist() == list(range(2500))
        assert out.column("score").to_pylist() == table.column("score").to_pylist()
        assert out.column("text")[42].as_py() == "NOTE 42 FOR CAROL"
        assert _leftovers(tmp_path) == []

    def test_hf_disk_keeps_features(self, tmp_path: Path) -> None:
        rows = [{**CHAT, "id": i} for i in range(3)]
        src = _hf_dir(tmp_path / "in_hf", rows)
        assert detect_format(src) == "hf-disk"
        _upper_copy(src, tmp_path / "out_hf", "hf-disk")
        out = datasets.load_from_disk(str(tmp_path / "out_hf"))
        assert out.features == datasets.load_from_disk(str(src)).features
        assert out["id"] == [0, 1, 2]
        assert [m["content"] for m in out[1]["messages"]] == [
            "You are helpful.",
            "I AM ALICE SMITH.",
            "HELLO ALICE.",
        ]
        assert _leftovers(tmp_path) == []

    @pytest.mark.parametrize("fmt", ["jsonl", "csv", "parquet", "hf-disk"])
    def test_error_mid_write_leaves_no_output(self, tmp_path: Path, fmt: DatasetFormat) -> None:
        out = tmp_path / "out"

        def write_then_fail() -> None:
            with open_writer(out, fmt, batch_size=2) as writer:
                for row in _rows(5):
                    writer.write(row)
                raise RuntimeError("boom")

        with pytest.raises(RuntimeError, match="boom"):
            write_then_fail()
        assert list(tmp_path.iterdir()) == []

    @pytest.mark.parametrize("fmt", ["jsonl", "parquet", "hf-disk"])
    def test_no_overwrite_without_force(self, tmp_path: Path, fmt: DatasetFormat) -> None:
        out = tmp_path / "out"
        for force in (False, True):
            with open_writer(out, fmt, force=force) as writer:
                writer.write({"text": "first" if not force else "second"})
        (record,) = iter_records(out, format=fmt)
        assert record.data["text"] == "second"
        with pytest.raises(OutputExistsError), open_writer(out, fmt):
            pass
        assert _leftovers(tmp_path) == []


class TestMalformed:
    """A malformed record stops the read with file:line (never its content), or is counted and skipped."""

    LINES = ('{"text": "a"}', '{"text": "b"}', '{"text": "secret Eve', '{"text": "d"}')

    def test_stop_names_file_and_line_and_writes_nothing(self, tmp_path: Path) -> None:
        src = tmp_path / "in.jsonl"
        src.write_text("\n".join(self.LINES) + "\n", encoding="utf-8")
        out = tmp_path / "out.jsonl"
        with pytest.raises(InputFormatError, match=r"in\.jsonl:3: malformed JSON") as info:
            _upper_copy(src, out, "jsonl")
        assert info.value.line == 3
        assert "Eve" not in str(info.value)
        assert not out.exists()
        assert _leftovers(tmp_path) == []

    def test_skip_counts(self, tmp_path: Path) -> None:
        src = tmp_path / "in.jsonl"
        src.write_text("\n".join([*self.LINES, "[1]", '{"text": 5}']) + "\n", encoding="utf-8")
        reader = iter_records(src, on_error="skip")
        assert [r.data["text"] for r in reader] == ["a", "b", "d"]
        assert [r.index for r in iter_records(src, on_error="skip")] == [0, 1, 2]
        assert reader.skipped == 3

    def test_csv_missing_column(self, tmp_path: Path) -> None:
        src = tmp_path / "in.csv"
        src.write_text("id,body\n1,x\n", encoding="utf-8")
        with pytest.raises(InputFormatError, match=r"in\.csv:1: no column 'text'"):
            list(iter_records(src))
        assert [r.texts for r in iter_records(src, rules=FieldRules(fields=("body",)))] == [
            [(("body",), "x")]
        ]


def test_streaming_memory_stays_bounded(tmp_path: Path) -> None:
    """Reading a 200k-record JSONL keeps only a record at a time."""
    src = tmp_path / "big.jsonl"
    with open(src, "w", encoding="utf-8") as f:
        for i in range(200_000):
            f.write(f'{{"id": {i}, "text": "record number {i} mentions Frank at frank@example.com"}}\n')
    size = src.stat().st_size
    tracemalloc.start()
    try:
        count = sum(1 for _ in iter_records(src))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert count == 200_000
    assert peak < size / 20, (peak, size)


def test_redact_dataset() -> None:
    dataset = datasets.Dataset.from_list([{**CHAT, "id": i} for i in range(5)])
    calls: list[int] = []

    def shout(texts: list[str]) -> list[str]:
        calls.append(len(texts))
        return [t.upper() for t in texts]

    out = redact_dataset(dataset, shout, batch_size=2)
    assert calls == [4, 4, 2]  # two selected texts per row, batched
    assert out.features == dataset.features
    assert out["id"] == list(range(5))
    assert [m["content"] for m in out[4]["messages"]] == [
        "You are helpful.",
        "I AM ALICE SMITH.",
        "HELLO ALICE.",
    ]
    assert dataset[4]["messages"][1]["content"] == "I am Alice Smith."  # the input is not mutated


def test_redact_dataset_wrong_count() -> None:
    dataset = datasets.Dataset.from_list([{"text": "a"}])
    with pytest.raises(ConfigError, match="returned 0 texts for 1"):
        redact_dataset(dataset, lambda texts: [])
