"""Canaries (honeytokens): synthetic records with unique fake identifiers, planted in a knowledge base
or a training set, that prove by their absence that nothing leaked.

- :func:`make_canaries` (``guardrail canary make``) writes realistic clinical notes, chat transcripts or
  dataset records, each with its own fake name, MRN, SSN-shaped number, e-mail and phone, and registers
  them in the keyring's :class:`CanaryRegistry` (sealed values, keyed digests; never a value in clear).
- ``gr.canaries(alert=...)`` (:func:`start_watch`) watches what a ``Guardrail`` releases: a canary value
  seen in clear writes one ``canary.tripped`` audit event and calls ``alert``.
- Dataset runs with the keyring fail their gate when the output still holds a canary value.
- :func:`check_file` (``guardrail canary check``) scans model outputs (memorisation tests).

See ``docs/canaries.md``.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from guardrail.canaries.generate import KINDS, Canary, Kind, generate, undetected
from guardrail.canaries.registry import (
    CANARY_KEY_PURPOSE,
    CanaryHit,
    CanaryMatcher,
    CanaryRegistry,
    CanaryRegistryError,
    strings_of,
)
from guardrail.canaries.watch import CanaryAlert, CanaryWatch
from guardrail.errors import ConfigError, OutputExistsError

if TYPE_CHECKING:
    from guardrail.keys import KeyringLike

__all__ = [
    "CANARY_KEY_PURPOSE",
    "KINDS",
    "CanaryAlert",
    "CanaryCheck",
    "CanaryHit",
    "CanaryMatcher",
    "CanaryRegistry",
    "CanaryRegistryError",
    "CanaryWatch",
    "MadeCanaries",
    "answer_observer",
    "audit_check",
    "check_file",
    "check_lines",
    "make_canaries",
    "matcher_for",
    "start_watch",
    "strings_of",
]

_SUFFIXES: dict[str, tuple[str, ...]] = {
    "note": (".txt", ".jsonl"),
    "chat": (".jsonl",),
    "record": (".jsonl", ".csv"),
}
_ROUNDS = 8


# --------------------------------------------------------------------------- watching


def start_watch(
    guardrail: Any, *, alert: Callable[[CanaryAlert], Any] | None = None, llm_outputs: bool | None = None
) -> CanaryWatch:
    """``gr.canaries(alert)``: start (or restart) the canary watch of ``guardrail``.

    Answers are watched through the response guard's observer hook when this build has one
    (``rag.response``: what the user receives); ``llm_outputs`` also watches every raw LLM completion and
    chat answer (``llm.output``, LlamaIndex instrumentation): ``None`` (default) does so only when there is
    no response guard, so that one answer trips once.

    Raises:
        ConfigError: no keyring or audit log, or no canary registered with the keyring.
    """
    keyring = guardrail._require_keyring()
    if guardrail.audit is None:
        raise ConfigError("a canary watch writes canary.tripped audit events: pass audit_log= to Guardrail")
    registry = CanaryRegistry(keyring)
    matcher = registry.matcher()
    if not len(matcher):
        raise ConfigError(
            f"{keyring.directory}: no canary is registered with this keyring; make some with "
            f"`guardrail canary make --kind note -n 5 -o canaries.txt --keyring {keyring.directory}`"
        )
    previous = getattr(guardrail, "_canary_watch", None)
    if previous is not None:
        previous.close()
    watch = CanaryWatch(guardrail, matcher, alert=alert)
    guardrail._canary_watch = watch
    import importlib

    try:  # the response guard, when this build has it
        responses: Any = importlib.import_module("guardrail.llama_index.responses")
    except ImportError:
        responses = None
    add = getattr(responses, "add_answer_observer", None)
    if add is not None:
        observer = answer_observer(guardrail)
        add(observer)
        remove = getattr(responses, "remove_answer_observer", None)
        if remove is not None:
            watch.on_close(lambda: remove(observer))
    if llm_outputs or (llm_outputs is None and add is None):
        watch.install_llm_handler()
    return watch


def answer_observer(guardrail: Any) -> Callable[[str, str], None]:
    """``fn(text, where)`` for the response guard's observer hook: checks each answer given out by
    ``guardrail``'s guarded engines (holds ``guardrail`` weakly; does nothing once the watch is closed)."""
    import weakref

    from guardrail.canaries.watch import observe_answer

    ref = weakref.ref(guardrail)

    def observe(text: str, where: str = "rag.response") -> None:
        gr = ref()
        if gr is not None:
            observe_answer(gr, text, where)

    return observe


def matcher_for(keyring: KeyringLike | None) -> CanaryMatcher | None:
    """The matcher of the keyring's canaries, or ``None`` when none were ever made with it."""
    if keyring is None or not CanaryRegistry.exists_for(keyring):
        return None
    matcher = CanaryRegistry(keyring).matcher()
    return matcher if len(matcher) else None


# --------------------------------------------------------------------------- making


@dataclass(frozen=True)
class MadeCanaries:
    """What :func:`make_canaries` wrote: the output file and the new canary ids, in file order."""

    output: Path
    kind: str
    ids: tuple[str, ...]


def _check_output(output: Path, kind: str, force: bool) -> None:
    from guardrail.io import check_output_path

    if kind not in _SUFFIXES:
        raise ConfigError(f"--kind {kind!r} is not one of {', '.join(KINDS)}")
    check_output_path(output, option="--output")
    if output.suffix.lower() not in _SUFFIXES[kind]:
        raise ConfigError(
            f"{output}: --kind {kind} writes {' or '.join(_SUFFIXES[kind])}; name the --output file with "
            "one of these suffixes"
        )
    if output.exists() and not force:
        raise OutputExistsError(f"{output}: exists; pass --force to overwrite it")


def _detected(canaries: list[Canary], detector: Any) -> list[bool]:
    texts = [t for c in canaries for t in c.texts()]
    found = detector.detect_batch(texts)
    out, i = [], 0
    for c in canaries:
        n = len(c.texts())
        out.append(not undetected(c, found[i : i + n]))
        i += n
    return out


def _unique(canary: Canary, registry: CanaryRegistry, taken: set[str]) -> bool:
    from guardrail.canaries.registry import compact

    forms = {compact(v) for _, v in canary.values}
    if forms & taken or any(registry.known(v) for _, v in canary.values):
        return False
    taken |= forms
    return True


def make_canaries(
    kind: Kind,
    n: int,
    output: str | Path,
    *,
    keyring: KeyringLike,
    tenant: str = "default",
    policy: Any = "default",
    force: bool = False,
    audit_log: str | Path | None = None,
    actor: str | None = None,
) -> MadeCanaries:
    """Write ``n`` canary documents of ``kind`` to ``output`` (atomically) and register them.

    Every planted value is checked to be found by ``policy``'s detector (so a redacted release never
    trips), and to be new to the registry.

    Raises:
        ConfigError: a bad kind, count or output path; the detector misses generated values.
        OutputExistsError: ``output`` exists (without ``force``).
    """
    from guardrail.core import Guardrail
    from guardrail.io import atomic_output
    from guardrail.keys import as_keyring

    out = Path(output)
    if not 1 <= n <= 100_000:
        raise ConfigError(f"-n/--count must be 1 to 100000, not {n}")
    _check_output(out, kind, force)
    ring = as_keyring(keyring)
    registry = CanaryRegistry(ring)
    detector = Guardrail(policy).detector
    made: list[Canary] = []
    taken: set[str] = set()
    for _ in range(_ROUNDS):
        batch = [generate(kind) for _ in range(n - len(made))]
        batch = [c for c in batch if _unique(c, registry, taken)]
        made += [c for c, ok in zip(batch, _detected(batch, detector), strict=True) if ok]
        if len(made) == n:
            break
    else:
        raise ConfigError(
            f"the detector of policy {Guardrail(policy).policy.name!r} does not find the values of "
            f"generated {kind} canaries; make them with the default policy (--policy default)"
        )
    ids = [registry.new_id() for _ in made]
    while len(set(ids)) != len(ids):
        ids = [registry.new_id() for _ in made]
    with atomic_output(out, force=force) as f:
        _write(f, out, kind, made)
        # registered before the file appears: a planted canary is always one the watch knows
        registry.register([(i, kind, c.values) for i, c in zip(ids, made, strict=True)], tenant=tenant)
    if audit_log is not None:
        _audit_make(audit_log, ring, ids, kind, tenant, actor)
    return MadeCanaries(out, kind, tuple(ids))


def _write(f: Any, out: Path, kind: str, made: list[Canary]) -> None:
    suffix = out.suffix.lower()
    if suffix == ".txt":
        f.writelines(str(c.data["text"]) + "\n" for c in made)
    elif suffix == ".csv":
        writer = csv.DictWriter(f, fieldnames=list(made[0].data), lineterminator="\n")
        writer.writeheader()
        writer.writerows(c.data for c in made)
    else:
        f.writelines(json.dumps(c.data, ensure_ascii=False) + "\n" for c in made)


def _audit_make(
    audit_log: str | Path, keyring: Any, ids: list[str], kind: str, tenant: str, actor: str | None
) -> None:
    from guardrail import __version__
    from guardrail.audit import AuditLog
    from guardrail.audit.events import actor_member

    log = AuditLog.for_keyring(audit_log, keyring)
    try:
        log.append(
            {
                "event": {"category": "canary.make", "action": "C", "outcome": "success"},
                "source": {"app": f"guardrail@{__version__}", "component": "canaries", "tenant": tenant},
                "actor": actor_member(actor),
                "canary": {"ids": list(ids), "kind": kind, "count": len(ids)},
            },
            sync=True,
        )
    finally:
        log.close()


# --------------------------------------------------------------------------- checking outputs


@dataclass(frozen=True)
class CanaryCheck:
    """A canary found in a scanned file: the 1-based line, the canary id, the entity types seen."""

    line: int
    canary: str
    entities: tuple[str, ...]


def _line_texts(line: str) -> list[str]:
    if line.lstrip().startswith(("{", "[")):
        try:
            return list(strings_of(json.loads(line)))  # escapes decoded: "\\n" no longer glues words
        except ValueError:
            pass  # not JSON after all: scan the raw line
    return [line]


def check_lines(lines: Iterable[str], *, keyring: KeyringLike) -> list[CanaryCheck]:
    """Scan model outputs, one per line (a JSON line: every string in it), for the keyring's canaries.

    Raises:
        ConfigError: no canary was ever made with the keyring.
    """
    matcher = matcher_for(keyring)
    if matcher is None:
        raise ConfigError(
            "no canary is registered with this keyring (make some with `guardrail canary make`)"
        )
    found: list[CanaryCheck] = []
    for number, line in enumerate(lines, start=1):
        hits = matcher.canaries_in(_line_texts(line))
        found += [CanaryCheck(number, c, tuple(e)) for c, e in hits.items()]
    return found


def check_file(path: str | Path, *, keyring: KeyringLike) -> list[CanaryCheck]:
    """Scan a file of model outputs (each line as text; a JSON line: every string in it) for the
    keyring's canaries.

    Raises:
        ConfigError: the file is missing or not UTF-8 text, or no canary was ever made with the keyring.
    """
    src = Path(path)
    if not src.is_file():
        raise ConfigError(f"{src}: no such file (give a .txt or .jsonl file of model outputs)")
    try:
        with open(src, encoding="utf-8-sig", newline="") as f:
            return check_lines(f, keyring=keyring)
    except UnicodeDecodeError:
        raise ConfigError(f"{src}: not UTF-8 text (re-encode it as UTF-8)") from None


def audit_check(
    audit_log: str | Path, keyring: KeyringLike, found: Sequence[CanaryCheck], *, source: str
) -> None:
    """Record canaries found in model outputs: one ``canary.tripped`` per canary (``model.output``)."""
    from guardrail import __version__
    from guardrail.audit import AuditLog
    from guardrail.audit.events import actor_member
    from guardrail.canaries.watch import canary_fields
    from guardrail.keys import as_keyring

    lines: dict[str, list[int]] = {}
    entities: dict[str, set[str]] = {}
    for hit in found:
        lines.setdefault(hit.canary, []).append(hit.line)
        entities.setdefault(hit.canary, set()).update(hit.entities)
    log = AuditLog.for_keyring(audit_log, as_keyring(keyring))
    try:
        for canary in sorted(lines):
            fields = canary_fields(canary, sorted(entities[canary]), where="model.output")
            fields["actor"] = actor_member(None)  # who ran the check (the model's outputs reached them)
            fields["resources"] = [{"type": "output", "id": f"{source}:{n}"} for n in lines[canary][:100]]
            log.append(
                {
                    "event": {"category": "canary.tripped", "action": "R", "outcome": "success"},
                    "source": {"app": f"guardrail@{__version__}", "component": "canaries"},
                    **fields,
                },
                sync=True,
            )
    finally:
        log.close()
