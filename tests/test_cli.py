"""End-to-end tests of the ``guardrail`` command line, run as a real subprocess.

Every command that detects loads spaCy (~1.5 s), so inputs are shared per module and assertions are
combined where that reads naturally.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import re
import signal
import subprocess
import sys
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "guardrail" / "data"
PACKS = ("default", "gdpr", "hipaa-safe-harbor")


def run(*args: object, cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run ``guardrail ARGS`` in a fresh interpreter; the whole process group is killed on timeout."""
    cmd = [sys.executable, "-m", "guardrail.cli", *(str(a) for a in args)]
    env = {**os.environ, "COLUMNS": "200"}
    env.pop("GUARDRAIL_DEBUG", None)
    with subprocess.Popen(
        cmd,
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # so a hung run and its worker processes can be killed together
    ) as proc:
        try:
            stdout, stderr = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
            raise
    return subprocess.CompletedProcess(cmd, proc.returncode, stdout, stderr)


@pytest.fixture(autouse=True, scope="module")
def _keyring(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Dataset runs sign a manifest with a keyring: one for the module, found through GUARDRAIL_KEYRING."""
    from guardrail.keys import Keyring

    ring = tmp_path_factory.mktemp("keyring") / "keys"
    Keyring.create(ring)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GUARDRAIL_KEYRING", str(ring))
        yield ring


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def temp_leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.startswith(".") or p.name.endswith(".tmp"))


def read_jsonl(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def assert_clean_error(proc: subprocess.CompletedProcess[str], code: int = 2) -> str:
    """The run failed with ``code`` and one ``error:`` line on stderr, without a traceback."""
    assert proc.returncode == code, (proc.returncode, proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: "), proc.stderr
    return lines[0]


# --------------------------------------------------------------------------- sample inputs

# PII planted in the inputs: none of it may appear in a findings file, and the e-mails and phone numbers
# (detected by patterns, so stable across model versions) must not survive redaction.
EMAILS = ["john.smith@example.com", "maria.lopez@example.org", "k.tanaka@example.net", "ops@example.com"]
PHONES = ["415-555-0136", "(217) 555-0143"]
NAMES = ["John Smith", "Maria Lopez", "Kenji Tanaka"]
PLANTED = EMAILS + PHONES + NAMES

TXT = (
    "Contact John Smith at john.smith@example.com.\n"
    "Nothing to see here.\r\n"
    "\n"
    "Call 415-555-0136 before Friday.\n"
    "last line without a newline"
)
TXT_LINES = 5

JSONL_RECORDS: list[dict[str, object]] = [
    {
        "id": "a1",
        "text": "Maria Lopez wrote from maria.lopez@example.org",
        "meta": {"lang": "en", "n": [1, 2.5]},
    },
    {"id": "a2", "text": "No personal data here.", "label": True, "score": 0.25},
    {"text": "Call (217) 555-0143 and ask for Kenji Tanaka.", "extra": None, "uni": "café ☕"},
    {"id": "a4", "text": None, "note": "text is null: nothing to scan"},
    {"id": "a5", "text": "Escalate to ops@example.com", "tags": ["x", {"y": "z"}]},
]
JSONL_TEXT_FIELDS = 4  # the record with "text": null has no field to scan

CHAT_RECORDS: list[dict[str, object]] = [
    {
        "id": "c1",
        "messages": [
            {"role": "system", "content": "You are a helpful assistant."},
            {"role": "user", "content": "My e-mail is k.tanaka@example.net, please update it."},
            {"role": "assistant", "content": "Done, the address on file is updated."},
        ],
    },
    {
        "id": "c2",
        "messages": [
            {"role": "user", "content": "Hi, what are your opening hours?"},
            {"role": "assistant", "content": "Email ops@example.com or call 415-555-0136."},
        ],
    },
]
CHAT_FIELDS = 4  # the user and assistant turns

CSV_TEXT = (
    "id,note,contact,amount\n"
    "r1,Reach John Smith at john.smith@example.com,john.smith@example.com,10.50\n"
    'r2,"Nothing, really",,0\n'
    "r3,Phone 415-555-0136 after 5pm,415-555-0136,-3\n"
)
CSV_ROWS = 3


def write_jsonl(path: Path, records: list[dict[str, object]]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory with notes.txt, records.jsonl, chat.jsonl and table.csv."""
    d = tmp_path_factory.mktemp("inputs")
    (d / "notes.txt").write_bytes(TXT.encode())
    write_jsonl(d / "records.jsonl", JSONL_RECORDS)
    write_jsonl(d / "chat.jsonl", CHAT_RECORDS)
    (d / "table.csv").write_bytes(CSV_TEXT.encode())
    return d


# --------------------------------------------------------------------------- scan


ScanResult = dict[str, object]


@pytest.fixture(scope="module")
def scan_all(inputs: Path) -> ScanResult:
    """A multi-input scan (txt, jsonl, chat jsonl) and a CSV scan (``--field`` applies to every input,
    and .txt input takes none), both with ``--json`` and ``--findings``."""
    mixed = run(
        "scan",
        "notes.txt",
        "records.jsonl",
        "chat.jsonl",
        "--json",
        "--findings",
        "out/findings.jsonl",
        cwd=inputs,
    )
    table = run("scan", "table.csv", "--field", "note", "--json", "--findings", "out/csv.jsonl", cwd=inputs)
    for proc in (mixed, table):
        assert proc.returncode == 0, proc.stderr
        assert "Traceback" not in proc.stderr
    assert temp_leftovers(inputs / "out") == []
    text = (inputs / "out" / "findings.jsonl").read_text(encoding="utf-8")
    csv_text = (inputs / "out" / "csv.jsonl").read_text(encoding="utf-8")
    return {
        "summary": json.loads(mixed.stdout),
        "csv_summary": json.loads(table.stdout),
        "lines": [json.loads(line) for line in (text + csv_text).splitlines()],
        "text": text + csv_text,
    }


def test_scan_json_summary_counts_per_entity(scan_all: ScanResult) -> None:
    summary, csv_summary, lines = scan_all["summary"], scan_all["csv_summary"], scan_all["lines"]
    assert isinstance(summary, dict)
    assert isinstance(csv_summary, dict)
    assert isinstance(lines, list)
    lines = [line for line in lines if line["file"] != "table.csv"]
    assert summary["policy"] == "default@1.0.0"
    assert summary["records"] == TXT_LINES + len(JSONL_RECORDS) + len(CHAT_RECORDS)
    assert summary["skipped"] == 0
    by_entity = summary["by_entity"]
    assert isinstance(by_entity, dict)
    assert set(by_entity) >= {"EMAIL_ADDRESS", "PHONE_NUMBER"}
    for counts in by_entity.values():
        assert set(counts) == {"findings", "records"}
        assert 1 <= counts["records"] <= counts["findings"]
    # 1 in the txt, 2 in the jsonl, 2 in the chat
    assert by_entity["EMAIL_ADDRESS"]["findings"] == 5
    assert summary["findings"] == sum(c["findings"] for c in by_entity.values())
    # the summary agrees with the findings file
    spans = [s for line in lines for s in line["spans"]]
    assert len(spans) == summary["findings"]
    assert summary["records_with_findings"] == len(
        {(line["file"], line["record"]) for line in lines if line["spans"]}
    )
    # the CSV scan counts the selected column only: one e-mail in "note", none from "contact"
    assert csv_summary["records"] == CSV_ROWS
    assert csv_summary["by_entity"]["EMAIL_ADDRESS"] == {"findings": 1, "records": 1}
    assert csv_summary["by_entity"]["PHONE_NUMBER"]["records"] == 1


def test_scan_findings_file_has_one_line_per_record_and_field(scan_all: ScanResult) -> None:
    lines = scan_all["lines"]
    assert isinstance(lines, list)
    per_file: dict[str, list[dict[str, object]]] = defaultdict(list)
    for line in lines:
        assert {"record", "id", "field", "spans"} <= set(line) <= {"file", "record", "id", "field", "spans"}
        for span in line["spans"]:
            assert set(span) == {"start", "end", "entity", "score"}
            assert 0 <= span["start"] < span["end"]
            assert 0.0 <= span["score"] <= 1.0
        per_file[Path(str(line["file"])).name].append(line)
    assert set(per_file) == {"notes.txt", "records.jsonl", "chat.jsonl", "table.csv"}

    txt = per_file["notes.txt"]
    assert [(f["record"], f["id"], f["field"]) for f in txt] == [(i, None, "line") for i in range(TXT_LINES)]

    jsonl = per_file["records.jsonl"]
    assert len(jsonl) == JSONL_TEXT_FIELDS
    assert [(f["record"], f["id"], f["field"]) for f in jsonl] == [
        (0, "a1", "text"),
        (1, "a2", "text"),
        (2, None, "text"),
        (4, "a5", "text"),
    ]
    # offsets point into the original text
    first = JSONL_RECORDS[0]["text"]
    assert isinstance(first, str)
    emails = [s for s in jsonl[0]["spans"] if s["entity"] == "EMAIL_ADDRESS"]
    assert [first[s["start"] : s["end"]] for s in emails] == ["maria.lopez@example.org"]
    assert jsonl[1]["spans"] == []

    chat = per_file["chat.jsonl"]
    # user and assistant turns (the policy's dataset roles); the system prompt is left alone
    assert [(f["record"], f["id"], f["field"]) for f in chat] == [
        (0, "c1", "messages.1.content"),
        (0, "c1", "messages.2.content"),
        (1, "c2", "messages.0.content"),
        (1, "c2", "messages.1.content"),
    ]
    assert len(chat) == CHAT_FIELDS
    assert "EMAIL_ADDRESS" in {s["entity"] for s in chat[0]["spans"]}
    assert {"EMAIL_ADDRESS", "PHONE_NUMBER"} <= {s["entity"] for s in chat[3]["spans"]}

    table = per_file["table.csv"]
    assert [(f["record"], f["id"]) for f in table] == [(0, "r1"), (1, "r2"), (2, "r3")]
    assert {s["entity"] for s in table[2]["spans"]} >= {"PHONE_NUMBER"}
    note = CSV_TEXT.splitlines()[1].split(",")[1]
    emails = [s for s in table[0]["spans"] if s["entity"] == "EMAIL_ADDRESS"]
    assert [note[s["start"] : s["end"]] for s in emails] == ["john.smith@example.com"]


def test_scan_csv_findings_name_the_column(scan_all: ScanResult) -> None:
    """CSV findings name the column as given to --field, not its index (regression)."""
    lines = scan_all["lines"]
    assert isinstance(lines, list)
    assert [line["field"] for line in lines if line["file"] == "table.csv"] == ["note"] * CSV_ROWS


def test_scan_findings_file_holds_no_raw_values(scan_all: ScanResult) -> None:
    text = scan_all["text"]
    assert isinstance(text, str)
    for value in PLANTED:
        assert value not in text
    assert "@" not in text


def test_scan_fail_on_gate(inputs: Path, scan_all: ScanResult) -> None:
    summary = scan_all["summary"]
    assert isinstance(summary, dict)
    total = summary["findings"]
    assert isinstance(total, int)
    assert total > 0
    files = ["notes.txt", "records.jsonl", "chat.jsonl"]
    over = run("scan", *files, "--fail-on", total - 1, cwd=inputs)
    assert over.returncode == 1, over.stderr
    assert f"{total} findings > --fail-on {total - 1}" in over.stderr
    at = run("scan", *files, "--fail-on", total, cwd=inputs)
    assert at.returncode == 0, at.stderr
    assert "gate failed" not in at.stderr
    assert "total" in at.stdout  # the table summary


def test_scan_refuses_to_overwrite_findings_without_force(inputs: Path, tmp_path: Path) -> None:
    existing = tmp_path / "findings.jsonl"
    existing.write_text("keep me\n")
    proc = run("scan", inputs / "notes.txt", "--findings", existing, cwd=tmp_path)
    assert "exists" in assert_clean_error(proc)
    assert existing.read_text() == "keep me\n"


# --------------------------------------------------------------------------- redact


def redact(src: Path, out: Path, *args: object, cwd: Path) -> subprocess.CompletedProcess[str]:
    """``redact`` that also checks the input is untouched and no temporary file is left beside the output."""
    before = sha256(src)
    proc = run("redact", src, "-o", out, *args, cwd=cwd)
    assert sha256(src) == before, "the input was modified"
    if out.parent.exists():
        assert temp_leftovers(out.parent) == []
    return proc


def test_redact_txt_preserves_lines(inputs: Path, tmp_path: Path) -> None:
    out = tmp_path / "out" / "notes.txt"
    out.parent.mkdir()  # a missing output directory is refused (tests/test_cli_output_paths.py)
    proc = redact(inputs / "notes.txt", out, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert f"in {TXT_LINES} record(s)" in proc.stderr
    original = (inputs / "notes.txt").read_bytes().decode().splitlines(keepends=True)
    redacted = out.read_bytes().decode().splitlines(keepends=True)
    assert len(redacted) == len(original) == TXT_LINES
    for before, after in zip(original, redacted, strict=True):
        # line endings (\n, \r\n, none at EOF) are kept
        assert before[len(before.rstrip("\r\n")) :] == after[len(after.rstrip("\r\n")) :]
    assert redacted[1:3] == original[1:3]
    assert redacted[4] == original[4]
    assert redacted[0] != original[0]
    assert "<EMAIL_ADDRESS>" in redacted[0]
    assert "<PHONE_NUMBER>" in redacted[3]
    assert not any(v in out.read_text() for v in EMAILS + PHONES)


def test_redact_jsonl_same_records_other_fields_untouched(inputs: Path, tmp_path: Path) -> None:
    out = tmp_path / "records.redacted.jsonl"
    proc = redact(inputs / "records.jsonl", out, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    redacted = read_jsonl(out)
    assert len(redacted) == len(JSONL_RECORDS)
    for before, after in zip(JSONL_RECORDS, redacted, strict=True):
        assert list(after) == list(before)  # same keys, same order
        assert {k: v for k, v in after.items() if k != "text"} == {
            k: v for k, v in before.items() if k != "text"
        }
    assert redacted[1]["text"] == JSONL_RECORDS[1]["text"]
    assert redacted[3]["text"] is None
    assert "<EMAIL_ADDRESS>" in str(redacted[0]["text"])
    assert "<PHONE_NUMBER>" in str(redacted[2]["text"])
    text = out.read_text(encoding="utf-8")
    assert "café ☕" in text  # non-ASCII kept as is
    assert not any(v in text for v in EMAILS + PHONES)


def test_redact_chat_jsonl_messages(inputs: Path, tmp_path: Path) -> None:
    out = tmp_path / "chat.redacted.jsonl"
    proc = redact(inputs / "chat.jsonl", out, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    redacted = read_jsonl(out)
    assert len(redacted) == len(CHAT_RECORDS)

    def without_content(record: dict[str, object]) -> dict[str, object]:
        messages = record["messages"]
        assert isinstance(messages, list)
        return {**record, "messages": [{k: v for k, v in m.items() if k != "content"} for m in messages]}

    for before, after in zip(CHAT_RECORDS, redacted, strict=True):
        assert without_content(after) == without_content(before)
    assert redacted[0]["messages"][0] == CHAT_RECORDS[0]["messages"][0]  # type: ignore[index]
    assert "<EMAIL_ADDRESS>" in redacted[0]["messages"][1]["content"]  # type: ignore[index]
    assert not any(v in out.read_text(encoding="utf-8") for v in EMAILS + PHONES)


def test_redact_csv_only_selected_column(inputs: Path, tmp_path: Path) -> None:
    out = tmp_path / "table.redacted.csv"
    proc = redact(inputs / "table.csv", out, "--field", "note", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    text = out.read_text(encoding="utf-8")
    assert text.splitlines()[0] == "id,note,contact,amount"
    original = list(csv.reader(io.StringIO(CSV_TEXT)))
    redacted = list(csv.reader(io.StringIO(text)))
    assert len(redacted) == len(original) == CSV_ROWS + 1
    note = original[0].index("note")
    for before, after in zip(original, redacted, strict=True):
        assert len(after) == len(before)
        assert [c for i, c in enumerate(after) if i != note] == [c for i, c in enumerate(before) if i != note]
    assert redacted[2][note] == "Nothing, really"
    assert "john.smith@example.com" not in redacted[1][note]
    assert "<EMAIL_ADDRESS>" in redacted[1][note]
    assert "415-555-0136" not in redacted[3][note]
    assert redacted[1][2] == "john.smith@example.com"  # the contact column was not selected


def test_redact_refuses_existing_output_then_force_overwrites(inputs: Path, tmp_path: Path) -> None:
    out = tmp_path / "notes.redacted.txt"
    out.write_text("previous output\n")
    refused = redact(inputs / "notes.txt", out, cwd=tmp_path)
    assert "--force" in assert_clean_error(refused)
    assert out.read_text() == "previous output\n"

    forced = redact(inputs / "notes.txt", out, "--force", cwd=tmp_path)
    assert forced.returncode == 0, forced.stderr
    assert "<EMAIL_ADDRESS>" in out.read_text()
    assert len(out.read_text().splitlines()) == TXT_LINES
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.redacted.txt"]


def test_redact_output_must_not_be_the_input(inputs: Path) -> None:
    src = inputs / "records.jsonl"
    before = sha256(src)
    for output, extra in (
        ("records.jsonl", []),
        (str(src), ["--force"]),
        ("./out/../records.jsonl", ["--force"]),
    ):
        proc = run("redact", "records.jsonl", "-o", output, *extra, cwd=inputs)
        assert "must not be the input" in assert_clean_error(proc)
    assert sha256(src) == before
    assert temp_leftovers(inputs) == []


# --------------------------------------------------------------------------- --jobs


NAME_POOL = ["Olivia Bennett", "Harold Finch", "Lucia Moreno", "Walter Kowalski", "Priya Natarajan"]


@pytest.fixture(scope="module")
def big_jsonl(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """~300 records where five people (and their e-mails) recur many times."""
    d = tmp_path_factory.mktemp("big")
    templates = [
        "Patient {name} asked to move the appointment; reply to {email}.",
        "Message from {name}: please send the invoice to {email} today.",
        "{name} called again about the refund. Contact: {email}",
    ]
    records = []
    for i in range(300):
        name = NAME_POOL[(i * 7) % len(NAME_POOL)]
        email = name.lower().replace(" ", ".") + "@example.com"
        records.append(
            {"id": f"b{i:03d}", "text": templates[i % len(templates)].format(name=name, email=email), "n": i}
        )
    return write_jsonl(d / "big.jsonl", records)


def test_jobs_2_output_identical_to_jobs_1_with_consistent_pseudonyms(big_jsonl: Path) -> None:
    d = big_jsonl.parent
    one = redact(big_jsonl, d / "one.jsonl", "--policy", "gdpr", "--jobs", "1", cwd=d)
    assert one.returncode == 0, one.stderr
    two = redact(big_jsonl, d / "two.jsonl", "--policy", "gdpr", "--jobs", "2", cwd=d)
    assert two.returncode == 0, two.stderr
    assert (d / "one.jsonl").read_bytes() == (d / "two.jsonl").read_bytes()

    source = read_jsonl(big_jsonl)
    redacted = read_jsonl(d / "one.jsonl")
    assert [r["id"] for r in redacted] == [r["id"] for r in source]
    tokens: dict[str, set[str]] = defaultdict(set)
    email_tokens: dict[str, set[str]] = defaultdict(set)
    for before, after in zip(source, redacted, strict=True):
        text = str(after["text"])
        name = next(n for n in NAME_POOL if n in str(before["text"]))
        assert name not in text
        assert "@example.com" not in text
        # keyed tokens (gdpr): the same in every run with this keyring
        tokens[name].update(re.findall(r"<PERSON_[a-z2-7]{10}>", text))
        email_tokens[name].update(re.findall(r"<EMAIL_ADDRESS_[a-z2-7]{10}>", text))
    for per_name in (tokens, email_tokens):
        # one token per name (and per e-mail) across the whole file; different values, different tokens
        assert all(len(t) == 1 for t in per_name.values()), dict(per_name)
        assert len({next(iter(t)) for t in per_name.values()}) == len(NAME_POOL)


# --------------------------------------------------------------------------- bad input


@pytest.fixture
def bad_line_3(tmp_path: Path) -> Path:
    lines = [json.dumps({"id": f"m{i}", "text": f"Record {i} for {EMAILS[0]}"}) for i in range(5)]
    lines[2] = '{"id": "m2", "text": "Secret Person secret.person@example.com'  # unterminated
    path = tmp_path / "bad.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    (tmp_path / "out").mkdir()
    return path


def test_malformed_json_stops_with_file_and_line(bad_line_3: Path) -> None:
    d = bad_line_3.parent
    proc = redact(bad_line_3, d / "out" / "bad.redacted.jsonl", cwd=d)
    message = assert_clean_error(proc)
    assert "bad.jsonl:3" in message
    assert "malformed JSON" in message
    assert "secret.person" not in proc.stderr  # the record's content is never echoed
    assert list((d / "out").iterdir()) == []  # no output, no temporary file


def test_malformed_json_skipped_with_on_error_skip(bad_line_3: Path) -> None:
    d = bad_line_3.parent
    out = d / "out" / "bad.redacted.jsonl"
    proc = redact(bad_line_3, out, "--on-error", "skip", cwd=d)
    assert proc.returncode == 0, proc.stderr
    assert "skipped 1 malformed record(s)" in proc.stderr
    assert [r["id"] for r in read_jsonl(out)] == ["m0", "m1", "m3", "m4"]


def test_malformed_json_with_jobs_2_fails_cleanly(bad_line_3: Path) -> None:
    """A bad record under --jobs 2 fails like under --jobs 1 (it used to hang: the error did not unpickle)."""
    d = bad_line_3.parent
    try:
        proc = run(
            "redact", bad_line_3, "-o", d / "out" / "bad.redacted.jsonl", "--jobs", "2", cwd=d, timeout=15
        )
    except subprocess.TimeoutExpired:
        pytest.fail("guardrail redact --jobs 2 hung on a malformed record")
    assert "bad.jsonl:3" in assert_clean_error(proc)
    assert list((d / "out").iterdir()) == []


@pytest.mark.parametrize(
    ("name", "content", "args", "expected"),
    [
        (
            "records.jsonl",
            '{"id": 1, "text": "hi"}\n',
            ["--field", "body"],
            "records.jsonl:1: no field 'body'",
        ),
        ("table.csv", "id,note\n1,hi\n", ["--field", "body"], "table.csv:1: no column 'body'"),
    ],
)
def test_missing_field_is_a_one_line_error(
    tmp_path: Path, name: str, content: str, args: list[str], expected: str
) -> None:
    (tmp_path / name).write_text(content, encoding="utf-8")
    proc = run("redact", name, "-o", f"out-{name}", *args, cwd=tmp_path)
    assert expected in assert_clean_error(proc)
    assert not (tmp_path / f"out-{name}").exists()
    assert temp_leftovers(tmp_path) == []


def test_non_utf8_input(tmp_path: Path) -> None:
    (tmp_path / "latin1.jsonl").write_bytes('{"text": "café Zoë"}\n'.encode("latin-1"))
    proc = run("scan", "latin1.jsonl", cwd=tmp_path)
    assert "not UTF-8" in assert_clean_error(proc)


def test_input_errors_before_any_work(tmp_path: Path) -> None:
    (tmp_path / "doc.pdf").write_bytes(b"%PDF-1.4\n")
    (tmp_path / "ok.txt").write_text("hello\n")
    assert "unsupported file type '.pdf'" in assert_clean_error(run("scan", "doc.pdf", cwd=tmp_path))
    assert "no such file" in assert_clean_error(run("scan", "missing.jsonl", cwd=tmp_path))
    assert "no such file" in assert_clean_error(run("redact", "missing.txt", "-o", "x.txt", cwd=tmp_path))
    # a missing file among several inputs fails before anything is scanned
    assert "missing.txt" in assert_clean_error(run("scan", "ok.txt", "missing.txt", cwd=tmp_path))

    unknown = assert_clean_error(run("scan", "ok.txt", "--policy", "no-such-pack", cwd=tmp_path))
    assert "no-such-pack" in unknown
    assert all(pack in unknown for pack in PACKS)

    debug = run("--debug", "scan", "ok.txt", "--policy", "no-such-pack", cwd=tmp_path)
    assert debug.returncode != 0
    assert "Traceback" in debug.stderr
    assert "PolicyError" in debug.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["doc.pdf", "ok.txt"]


@pytest.mark.parametrize(
    ("name", "content", "args"),
    [
        ("empty.jsonl", "", []),
        ("empty.txt", "", []),
        ("empty.csv", "", ["--field", "text"]),
        ("header-only.csv", "id,text\n", ["--field", "text"]),
    ],
)
def test_empty_input_gives_empty_output(tmp_path: Path, name: str, content: str, args: list[str]) -> None:
    (tmp_path / name).write_text(content, encoding="utf-8")
    out = tmp_path / f"redacted-{name}"
    proc = redact(tmp_path / name, out, *args, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "in 0 record(s)" in proc.stderr
    assert out.read_text(encoding="utf-8") == content


def test_redact_output_is_a_directory(inputs: Path, tmp_path: Path) -> None:
    """-o DIR --force is refused with one line (it used to end in an IsADirectoryError traceback)."""
    (tmp_path / "target").mkdir()
    proc = run("redact", inputs / "notes.txt", "-o", "target", "--force", cwd=tmp_path)
    assert "target" in assert_clean_error(proc)


# --------------------------------------------------------------------------- policy


GOOD_POLICY = """\
name: mini
version: "0.1"
detection:
  entities: [PERSON, EMAIL_ADDRESS]
redaction:
  operators:
    EMAIL_ADDRESS: {operator: mask, keep_last: 4}
"""

BAD_POLICIES = {
    "range.yaml": (
        'name: bad\nversion: "1"\ndetection:\n  entities: [PERSON]\n  threshold: 1.5\n',
        "range.yaml:5: invalid policy at detection.threshold",
    ),
    "typo.yaml": (
        'name: bad\nversion: "1"\ndetection:\n  entities: [PERSON]\n  threshhold: 0.3\n',
        "typo.yaml:5: invalid policy at detection.threshhold: unknown key 'threshhold'",
    ),
    "entity.yaml": (
        'name: bad\nversion: "1"\ndetection:\n  entities:\n    - PERSON\n    - SHOE_SIZE\n',
        "entity.yaml:6: invalid policy at detection.entities[1]: unknown entity 'SHOE_SIZE'",
    ),
}


def test_policy_lint(tmp_path: Path) -> None:
    (tmp_path / "good.yaml").write_text(GOOD_POLICY)
    good = run("policy", "lint", "good.yaml", cwd=tmp_path)
    assert good.returncode == 0, good.stderr
    assert good.stdout.startswith("ok: mini@0.1")
    for name, (text, expected) in BAD_POLICIES.items():
        (tmp_path / name).write_text(text)
        message = assert_clean_error(run("policy", "lint", name, cwd=tmp_path))
        assert expected in message, message
    assert "no such file" in assert_clean_error(run("policy", "lint", "nope.yaml", cwd=tmp_path))


def test_policy_lint_operator_error_path(tmp_path: Path) -> None:
    (tmp_path / "op.yaml").write_text(
        'name: x\nversion: "1"\ndetection:\n  entities: [PERSON]\n'
        "redaction:\n  operators:\n    PERSON: {operator: mask, keep_last: 99}\n"
    )
    message = assert_clean_error(run("policy", "lint", "op.yaml", cwd=tmp_path))
    assert "op.yaml:7: invalid policy at redaction.operators.PERSON.keep_last:" in message


def test_error_on_line_100_names_the_line(tmp_path: Path) -> None:
    """'FILE:100:' is printed as is (rich used to turn ':100:' into an emoji)."""
    (tmp_path / "long.yaml").write_text(
        "".join(f"# comment {i}\n" for i in range(95)) + 'name: bad\nversion: "1"\ndetection:\n'
        "  entities: [PERSON]\n  threshold: 1.5\n"
    )
    message = assert_clean_error(run("policy", "lint", "long.yaml", cwd=tmp_path))
    assert "long.yaml:100:" in message


def test_policy_show_hipaa(tmp_path: Path) -> None:
    proc = run("policy", "show", "hipaa-safe-harbor", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert out.startswith("hipaa-safe-harbor@1.0.0  sha256 ")
    assert "HIPAA Safe Harbor identifiers" in out
    for identifier in (
        "Telephone numbers",
        "Fax numbers",
        "Social security numbers",
        "Web URLs",
        "IP addresses",
    ):
        assert identifier in out
    for entity, operator in (
        ("DATE_TIME", "generalize"),
        ("US_ZIP_CODE", "generalize"),
        ("US_SSN", "replace"),
    ):
        assert re.search(rf"\b{entity}\s*│\s*[\d.]+\s*│\s*{operator}\b", out), entity
    assert re.search(r"US_DRIVER_LICENSE\s*│\s*0\.6\s*│", out)  # per-entity threshold


def test_policy_show_marks_human_review(tmp_path: Path) -> None:
    """The human-review marker is shown (rich markup used to swallow '[review]' as a style tag)."""
    proc = run("policy", "show", "hipaa-safe-harbor", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("[human review]") == 3  # identifiers P, Q and R


def test_policy_show_json(tmp_path: Path) -> None:
    proc = run("policy", "show", "default", "--json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["name"] == "default"
    assert "PERSON" in data["detection"]["entities"]
    assert data["redaction"]["default"]["operator"] == "replace"


# --------------------------------------------------------------------------- demo


SAMPLE_NAMES = ["Harold Finch", "Lucia Moreno", "Olivia Bennett"]
SAMPLE_SSN = "078-05-1120"


@pytest.fixture(scope="module")
def demo_output(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("demo")
    proc = run("demo", "-o", "result", cwd=d)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    return d / "result"


def _demo_texts(result: Path) -> dict[str, str]:
    files = [
        *sorted((result / "knowledge_base.redacted").glob("*.md")),
        result / "finetune_chat.redacted.jsonl",
    ]
    return {str(f.relative_to(result)): f.read_text(encoding="utf-8") for f in files}


def test_demo_writes_redacted_samples(demo_output: Path) -> None:
    samples = sorted(p.name for p in (DATA / "knowledge_base").glob("*.md"))
    assert sorted(p.name for p in (demo_output / "knowledge_base.redacted").glob("*.md")) == samples
    chat = read_jsonl(demo_output / "finetune_chat.redacted.jsonl")
    source = read_jsonl(DATA / "finetune_chat.jsonl")
    assert [r["id"] for r in chat] == [r["id"] for r in source]
    # the samples do contain these names
    raw = "".join(
        p.read_text(encoding="utf-8")
        for p in [*(DATA / "knowledge_base").glob("*.md"), DATA / "finetune_chat.jsonl"]
    )
    assert all(value in raw for value in [*SAMPLE_NAMES, SAMPLE_SSN])
    for path, text in _demo_texts(demo_output).items():
        for value in [*SAMPLE_NAMES, SAMPLE_SSN]:
            assert value not in text, f"{value!r} left in {path}"


def test_input_edge_cases_bom_ids_and_file_modes(tmp_path: Path) -> None:
    """A UTF-8 byte-order mark is not part of the first record; ids keep their JSON type; a new output
    is private (0600) and an overwritten one keeps its mode; the findings file may not be an input."""
    src = tmp_path / "bom.jsonl"
    src.write_bytes(
        "\ufeff".encode()
        + b'{"id": 7, "text": "Call Jane Roe at 617-555-0143."}\n{"id": "b", "text": "nothing here"}\n'
    )
    findings = tmp_path / "findings.jsonl"
    proc = run("scan", src, "--findings", findings, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    rows = read_jsonl(findings)
    assert [r["id"] for r in rows] == [7, "b"]
    assert (findings.stat().st_mode & 0o777) == 0o600

    out = tmp_path / "out.jsonl"
    out.write_text("old\n", encoding="utf-8")
    out.chmod(0o644)
    proc = run("redact", src, "-o", out, "--force", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert (out.stat().st_mode & 0o777) == 0o644
    assert "617-555-0143" not in out.read_text(encoding="utf-8")

    before = sha256(src)
    message = assert_clean_error(run("scan", src, "--findings", src, "--force", cwd=tmp_path))
    assert "must not be an input" in message
    assert sha256(src) == before
