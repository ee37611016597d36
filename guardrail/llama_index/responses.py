"""The answer path of guarded engines: query guard, response guard, pseudonym restoration, audit.

Every answer a guarded query or chat engine gives goes through one :class:`ResponseGate`:

* **query guard**: the question is detected before the embedding model and the LLM see it, and redacted
  with the principal's profile where the policy's ``responses`` section says ``query: redact``;
* **response guard**: the LLM sits behind a :class:`GatedLLM`, so every text it produces (answers,
  condensed questions, sub-answers) is detected and redacted with the principal's profile (or withheld)
  *before* a synthesizer, a chat memory or the caller sees it. Values the principal was released in clear
  in this request stay. Streams are cut into sentences (a bounded window): a sentence is released once
  it is complete and decided, so the concatenated stream equals the non-streamed answer and no delta ever
  shows a value that the finished answer redacts;
* **restoration**: with ``restore_in_response: true`` the LLM gets ``<PERSON_1>``-style pseudonyms
  instead of the values the principal may see, and the answer gets them back from the request's token map
  (held in memory only), tolerant of what LLMs do to tokens but never restoring one not in the map;
* **audit**: one ``rag.response`` event per answer (counts per entity type, the LLM as processor, the
  query's MAC and length, never values) and a ``rag.reidentify`` event when tokens were restored.

The principal's profile for an answer is the one their rule gives for the policy's PHI classification
(an answer is unlabelled text: personal data in it is treated as PHI); a principal no rule allows it is
handled as profile ``redact``.
"""

from __future__ import annotations

import asyncio
import contextvars
import re
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from llama_index.core.base.llms.types import (
    ChatMessage,
    ChatResponse,
    ChatResponseAsyncGen,
    ChatResponseGen,
    CompletionResponse,
    CompletionResponseAsyncGen,
    CompletionResponseGen,
    LLMMetadata,
)
from llama_index.core.bridge.pydantic import PrivateAttr
from llama_index.core.llms.llm import LLM
from llama_index.core.postprocessor.types import BaseNodePostprocessor
from llama_index.core.schema import MetadataMode, NodeWithScore, QueryBundle

from guardrail.access import AccessDenied, Decision, Principal, Resource, current_principal, evaluate
from guardrail.errors import GuardrailError
from guardrail.findings import Finding
from guardrail.redaction import PseudonymScope

__all__ = [
    "WITHHELD",
    "GatedLLM",
    "ReleaseRecorder",
    "ResponseGate",
    "add_answer_observer",
    "remove_answer_observer",
]

#: What a principal gets instead of an answer withheld by ``mode: block``.
WITHHELD = "[answer withheld: it contained personal data you may not see]"

# --------------------------------------------------------------------------- observers

_OBSERVERS: list[Callable[[str, str], None]] = []
_OBSERVERS_LOCK = threading.Lock()


def add_answer_observer(fn: Callable[[str, str], None]) -> Callable[[str, str], None]:
    """Call ``fn(text, where)`` with every text a guarded engine releases to a principal: the final
    answer (``where="response"``) and, when streaming, each released delta (``"response.stream"``).

    An observer that raises fails the answer closed (nothing more is released). Returns ``fn``.
    """
    with _OBSERVERS_LOCK:
        _OBSERVERS.append(fn)
    return fn


def remove_answer_observer(fn: Callable[[str, str], None]) -> None:
    """Stop calling ``fn`` (no error if it was not added)."""
    with _OBSERVERS_LOCK:
        if fn in _OBSERVERS:
            _OBSERVERS.remove(fn)


def _notify(text: str, where: str) -> None:
    if not text:
        return
    with _OBSERVERS_LOCK:
        observers = list(_OBSERVERS)
    for fn in observers:
        try:
            fn(text, where)
        except Exception as exc:  # noqa: BLE001 - an observer failure withholds the rest of the answer
            from guardrail.llama_index.guard import RetrievalBlocked

            raise RetrievalBlocked(f"an answer observer failed ({type(exc).__name__})") from None


# --------------------------------------------------------------------------- token map


class TokenMap:
    """``<ENTITY_n>`` tokens for the values released in clear to one principal, and back. In memory only;
    its repr shows counts."""

    def __init__(self) -> None:
        self._scope = PseudonymScope()
        self._values: dict[tuple[str, int], str] = {}
        self._lock = threading.Lock()

    def token(self, entity: str, value: str) -> str:
        token = self._scope.token(entity, value)
        n = int(token[len(entity) + 2 : -1])
        with self._lock:
            self._values.setdefault((entity, n), value)
        return token

    def reserve(self, texts: Sequence[str]) -> None:
        """Number new tokens after the ``<ENTITY_n>`` already in ``texts`` (a profile that pseudonymises
        some values itself): a restorable token never looks like one of those."""
        counters = self._scope._counters
        with self._lock:
            for entity, n in re.findall(r"<([A-Z][A-Z0-9_]*)_(\d+)>", "\n".join(texts)):
                if (entity, int(n)) not in self._values:
                    counters[entity] = max(counters.get(entity, 0), int(n))

    def value(self, entity: str, n: int) -> str | None:
        with self._lock:
            return self._values.get((entity, n))

    def entities(self) -> list[str]:
        with self._lock:
            return sorted({e for e, _ in self._values})

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:
        return f"TokenMap(tokens={len(self._values)})"


# --------------------------------------------------------------------------- the answer state


def _norm(text: str) -> str:
    return " ".join(text.split()).casefold()


_OUR_TOKEN = re.compile(r"^<(?P<entity>[A-Z][A-Z0-9_]*?)(?:_\d+|#[0-9a-f]{8,64})?>$")


@dataclass
class _Answer:
    """One answer being produced for one principal (nested engines join it)."""

    principal: Principal
    decision: Decision | None
    profile: str
    mode: str
    query_mode: str
    tokens: TokenMap | None
    started: float = field(default_factory=time.perf_counter)
    released: list[str] = field(default_factory=list)
    redacted: Counter[str] = field(default_factory=Counter)
    withheld: Counter[str] = field(default_factory=Counter)
    restored: Counter[str] = field(default_factory=Counter)
    query_counts: Counter[str] = field(default_factory=Counter)
    kept: int = 0
    llms: list[tuple[str, str | None]] = field(default_factory=list)
    llm_objects: list[Any] = field(default_factory=list)
    query_mac: str = ""
    query_chars: int = 0
    streamed: bool = False
    chars: int = 0
    blocked: bool = False
    finished: bool = False
    # parts of people's full names found in this answer so far (in memory only): "Finch" alone in a later
    # sentence or segment is the same person as "Harold Finch" in an earlier one
    names: set[str] = field(default_factory=set)
    # the copies guards released in this answer, by node id: any other node reaching its LLM (added by a
    # node postprocessor from a plain docstore, a cache, your own code) is decided on the spot
    guarded: dict[str, Any] = field(default_factory=dict)
    _corpus: str | None = None
    _scope: PseudonymScope | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    def note_guarded(self, nodes: Sequence[NodeWithScore]) -> None:
        with self.lock:
            for hit in nodes:
                self.guarded[hit.node.node_id] = hit.node

    def is_guarded(self, node: Any) -> bool:
        with self.lock:
            known = self.guarded.get(node.node_id)
        # the very copy (a postprocessor may change it in place: a sentence window put in as its text)
        return known is not None and (known is node or known.get_content() == node.get_content())

    def add_released(self, texts: Sequence[str]) -> None:
        with self.lock:
            self.released.extend(texts)
            self._corpus = None
            self._scope = None

    def corpus(self) -> str:
        with self.lock:
            if self._corpus is None:
                self._corpus = "\n".join(_norm(t) for t in self.released)
            return self._corpus

    def scope(self) -> PseudonymScope:
        """A pseudonym scope whose numbers start after the tokens the principal already saw (an answer's
        new ``<PERSON_n>`` never reuses a context token's number)."""
        with self.lock:
            if self._scope is None:
                scope = PseudonymScope()
                for entity, n in re.findall(r"<([A-Z][A-Z0-9_]*)_(\d+)>", "\n".join(self.released)):
                    scope._counters[entity] = max(scope._counters.get(entity, 0), int(n))
                self._scope = scope
            return self._scope

    def note_llm(self, llm: Any) -> None:
        from guardrail.audit.events import _names_of

        names = _names_of(llm)
        with self.lock:
            if names not in self.llms:
                self.llms.append(names)
                self.llm_objects.append(llm)


_answer: contextvars.ContextVar[_Answer | None] = contextvars.ContextVar("guardrail_answer", default=None)


def current_answer() -> _Answer | None:
    """The answer being produced in this context, if any."""
    return _answer.get()


# --------------------------------------------------------------------------- segmentation

_ABBREVIATIONS = frozenset(
    {"dr", "mr", "mrs", "ms", "mx", "st", "jr", "sr", "prof", "vs", "no", "fig", "dept"}
)


def _boundary(text: str, start: int, window: int, final: bool) -> int | None:
    """Where the segment starting at ``start`` ends, decided by the text alone (so streamed and
    non-streamed answers are cut identically): after a sentence end followed by whitespace, after a
    newline, or at the first whitespace once ``window`` characters passed. None: not decidable yet."""
    n = len(text)
    i = start
    while i < n:
        ch = text[i]
        if ch == "\n":
            return i + 1
        if ch in ".!?":
            if i + 1 >= n:
                return None if not final else n
            if text[i + 1].isspace():
                word = re.search(r"(\w+)$", text[start:i])
                short = word is not None and (
                    len(word.group(1)) == 1 or word.group(1).lower() in _ABBREVIATIONS
                )
                if not short:
                    return i + 1
        elif ch.isspace() and i - start >= window:
            return i
        i += 1
    return n if final and n > start else None


def _split(text: str, window: int, final: bool) -> tuple[list[str], int]:
    """The complete segments at the start of ``text`` and where the undecided rest begins."""
    segments: list[str] = []
    pos = 0
    while pos < len(text):
        end = _boundary(text, pos, window, final)
        if end is None:
            break
        segments.append(text[pos:end])
        pos = end
    return segments, pos


# --------------------------------------------------------------------------- the gate


class ResponseGate:
    """Decides, redacts, restores and audits the answers of one :class:`~guardrail.Guardrail`."""

    def __init__(self, guardrail: Any) -> None:
        self.gr = guardrail
        self._redactors: dict[str, tuple[Any, frozenset[str]]] = {}
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ begin / end

    def begin(self, query: str, *, tokens: TokenMap | None = None) -> tuple[_Answer, bool]:
        """The answer for the current principal (joining an answer already in progress: ``(answer,
        False)``), or :class:`AccessDenied` (audited) without a principal."""
        active = _answer.get()
        if active is not None:
            return active, False
        principal = current_principal()
        if principal is None:
            self._audit_denied(query)
            raise AccessDenied("no principal: wrap the call in `with gr.acting_as(Principal(...))`")
        policy = self.gr.policy
        resource = Resource(tenant=self.gr.tenant, classification=policy.access.phi_classification)
        decision = evaluate(policy, principal, resource)
        profile = decision.redaction if decision.allowed else "redact"
        settings = policy.responses.for_profile(profile)
        restore = bool(settings.restore_in_response and decision.allowed)
        answer = _Answer(
            principal=principal,
            decision=decision,
            profile=profile,
            mode=str(settings.mode),
            query_mode=str(settings.query),
            tokens=(tokens if tokens is not None else TokenMap()) if restore else None,
        )
        from guardrail.llama_index.guard import query_mac

        answer.query_mac = query_mac(self._query_key(), query)
        answer.query_chars = len(query)
        return answer, True

    def _query_key(self) -> bytes:
        keyring = self.gr.keyring
        return keyring.hmac_key("audit-query") if keyring is not None else bytes(32)

    def activate(self, answer: _Answer) -> contextvars.Token[_Answer | None]:
        return _answer.set(answer)

    def deactivate(self, token: contextvars.Token[_Answer | None]) -> None:
        _answer.reset(token)

    # ------------------------------------------------------------------ query guard

    def guard_query(self, answer: _Answer, query: str) -> str:
        """``query`` as the embedding model and the LLM may see it (detected; redacted if the profile
        says so)."""
        if not query:
            return query
        findings = self._detect([query])[0]
        findings = [f for f in findings if not _is_token(query[f.start : f.end])]
        answer.query_counts.update(f.entity for f in findings)
        if answer.query_mode != "redact" or not findings or answer.profile == "none":
            return query
        redactor, keep = self._redactor(answer.profile)
        findings = [f for f in findings if f.entity not in keep]
        return str(redactor.redact(query, findings, scope=answer.scope()).text)

    def guard_bundle(self, answer: _Answer, bundle: QueryBundle) -> QueryBundle:
        text = self.guard_query(answer, bundle.query_str)
        strs = bundle.custom_embedding_strs
        guarded = [self.guard_query(answer, s) for s in strs] if strs else None
        if text == bundle.query_str and guarded == strs:
            return bundle
        # a precomputed embedding would carry the original question; embedding strings are guarded too
        return QueryBundle(
            query_str=text, custom_embedding_strs=guarded if guarded != [text] else None, embedding=None
        )

    # ------------------------------------------------------------------ released context

    def record(self, answer: _Answer, nodes: list[NodeWithScore]) -> list[NodeWithScore]:
        """Note what the principal was released (values they may see in the answer) and, for a restoring
        profile, return copies in which those values are pseudonyms for the LLM."""
        answer.add_released([hit.node.get_content(metadata_mode=MetadataMode.LLM) for hit in nodes])
        if answer.tokens is None or not nodes:
            return nodes
        return self._pseudonymise(answer.tokens, nodes)

    def _pseudonymise(self, tokens: TokenMap, nodes: list[NodeWithScore]) -> list[NodeWithScore]:
        items: list[tuple[int, str | None, str]] = []
        for i, hit in enumerate(nodes):
            items.append((i, None, hit.node.get_content()))
            excluded = set(hit.node.excluded_llm_metadata_keys or ())
            for key, value in (hit.node.metadata or {}).items():
                if isinstance(value, str) and value and key not in excluded:
                    items.append((i, key, value))
        tokens.reserve([text for _, _, text in items])
        found = self._detect([text for _, _, text in items])
        out = [NodeWithScore(node=hit.node.model_copy(deep=True), score=hit.score) for hit in nodes]
        for (i, meta_key, original), findings in zip(items, found, strict=True):
            replaced = _replace(original, findings, tokens)
            node: Any = out[i].node
            if meta_key is None:
                node.set_content(replaced)
            else:
                node.metadata[meta_key] = replaced
        return out

    # ------------------------------------------------------------------ response guard

    def redactor(self, answer: _Answer) -> _StreamRedactor:
        return _StreamRedactor(self, answer)

    def redact_text(self, answer: _Answer, text: str) -> str:
        """The whole-text answer path: the same segments and decisions as a stream of ``text``."""
        return self.redactor(answer).whole(text)

    def _decide(self, answer: _Answer, segments: list[str]) -> list[str]:
        """Each segment as the principal may see it (findings redacted; in block mode, marks the answer)."""
        if answer.mode == "off" or answer.profile == "none" or not segments:
            return segments
        found = self._detect(segments)
        with answer.lock:
            for segment, findings in zip(segments, found, strict=True):
                answer.names.update(_name_parts(segment, findings))
            names = set(answer.names)
        found = [
            _with_name_parts(segment, findings, names)
            for segment, findings in zip(segments, found, strict=True)
        ]
        redactor, keep = self._redactor(answer.profile)
        corpus = answer.corpus()
        out = []
        for segment, findings in zip(segments, found, strict=True):
            chosen: list[Finding] = []
            for f in findings:
                value = segment[f.start : f.end]
                if f.entity in keep or _is_token(value):
                    continue
                if _released(value, corpus):
                    answer.kept += 1  # released in clear to this principal in this request
                    continue
                chosen.append(f)
            if not chosen:
                out.append(segment)
                continue
            if answer.mode == "block":
                answer.withheld.update(f.entity for f in chosen)
                answer.blocked = True
                out.append(segment)
                continue
            result = redactor.redact(segment, chosen, scope=answer.scope())
            answer.redacted.update(f.entity for f in result.findings)
            out.append(result.text)
        return out

    def _detect(self, texts: Sequence[str]) -> list[list[Finding]]:
        from guardrail.llama_index.guard import RetrievalBlocked

        try:
            found: list[list[Finding]] = self.gr.detect_batch(list(texts))
            return found
        except GuardrailError:
            raise
        except Exception as exc:  # noqa: BLE001 - detection failure withholds the answer
            raise RetrievalBlocked(f"detection of the answer failed ({type(exc).__name__})") from None

    def _redactor(self, profile: str) -> tuple[Any, frozenset[str]]:
        with self._lock:
            cached = self._redactors.get(profile)
            if cached is None:
                cached = self.gr._profile_redactor(profile)
                self._redactors[profile] = cached
            return cached

    # ------------------------------------------------------------------ restoration and release

    def restorer(self, answer: _Answer) -> _Restorer:
        return _Restorer(answer)

    def release_text(self, answer: _Answer, text: str, *, where: str = "response") -> str:
        """The final answer text for the principal: restored (when allowed), observed."""
        restorer = self.restorer(answer)
        out = restorer.feed(text) + restorer.flush()
        answer.chars = len(out)
        _notify(out, where)
        return out

    def finish(self, answer: _Answer, *, outcome: str | None = None) -> None:
        """Write the answer's ``rag.response`` (and ``rag.reidentify``) events, once."""
        with answer.lock:
            if answer.finished:
                return
            answer.finished = True
        if self.gr.audit is None:
            return
        from guardrail.llama_index.guard import RetrievalBlocked

        try:
            self._audit_answer(answer, outcome=outcome)
        except Exception as exc:  # noqa: BLE001 - no audit record, no answer
            raise RetrievalBlocked(f"the audit record could not be written ({type(exc).__name__})") from None

    # ------------------------------------------------------------------ audit

    def _actor(self, principal: Principal | None) -> dict[str, Any]:
        if principal is None:
            return {"ref": "anonymous", "type": "user", "roles": []}
        return {"ref": principal.id, "type": "user", "roles": list(principal.roles)}

    def _policy_member(self, answer: _Answer | None, decision: str) -> dict[str, Any]:
        policy = self.gr.policy
        member: dict[str, Any] = {
            "id": policy.name,
            "version": policy.version,
            "sha256": policy.sha256,
            "decision": decision,
        }
        if answer is not None and answer.decision is not None:
            member["rule_ids"] = list(answer.decision.rule_ids)
            member["redaction_profile"] = [answer.profile]
        return member

    def _audit_denied(self, query: str) -> None:
        if self.gr.audit is None:
            return
        from guardrail.audit.events import purpose_member
        from guardrail.llama_index.guard import RetrievalBlocked, query_mac

        try:
            self.gr._audit_event(
                {"category": "rag.response", "action": "R", "outcome": "denied"},
                actor=self._actor(None),
                purpose=purpose_member(self.gr.policy, None),
                policy=self._policy_member(None, "deny") | {"rule_ids": ["no-principal"]},
                query={"mac": query_mac(self._query_key(), query), "chars": len(query)},
                response={"mode": "none", "chars": 0, "streamed": False},
            )
        except Exception as exc:  # noqa: BLE001 - no audit record, no answer
            raise RetrievalBlocked(f"the audit record could not be written ({type(exc).__name__})") from None

    def _audit_answer(self, answer: _Answer, *, outcome: str | None) -> None:
        from guardrail.audit.events import processor_members, purpose_member

        principal = answer.principal
        blocked = answer.blocked
        processors: list[dict[str, Any]] = []
        for llm in answer.llm_objects:
            for found in processor_members(self.gr.policy, llm=llm):
                member = {**found, "received": "chunks"}
                if member not in processors:
                    processors.append(member)
        response: dict[str, Any] = {
            "mode": answer.mode,
            "profile": answer.profile,
            "chars": answer.chars,
            "streamed": answer.streamed,
            "redacted": dict(sorted(answer.redacted.items())),
            "withheld": dict(sorted(answer.withheld.items())),
            "kept_released": answer.kept,
            "restored": sum(answer.restored.values()),
            "llm": [{"class": c[:80], **({"model": m[:80]} if m else {})} for c, m in answer.llms],
            "latency_ms": round((time.perf_counter() - answer.started) * 1000, 3),
        }
        if outcome is not None:
            response["ended"] = outcome
        counts = Counter(answer.redacted) + Counter(answer.withheld)
        fields: dict[str, Any] = {
            "actor": self._actor(principal),
            "purpose": purpose_member(self.gr.policy, principal.purpose),
            "policy": self._policy_member(answer, "deny" if blocked else "allow"),
            "query": {
                "mac": answer.query_mac,
                "chars": answer.query_chars,
                "pii": dict(sorted(answer.query_counts.items())),
                "redacted": answer.query_mode == "redact" and bool(answer.query_counts),
            },
            "response": response,
            "pii": {"detector": "presidio", "counts": dict(sorted(counts.items()))},
        }
        if processors:
            fields["processors"] = processors
        self.gr._audit_event(
            {"category": "rag.response", "action": "R", "outcome": "denied" if blocked else "success"},
            **fields,
        )
        if answer.restored:
            self.gr._audit_event(
                {"category": "rag.reidentify", "action": "R", "outcome": "success"},
                actor=self._actor(principal),
                purpose=purpose_member(self.gr.policy, principal.purpose),
                policy=self._policy_member(answer, "allow"),
                pii={"detector": "presidio", "counts": dict(sorted(answer.restored.items()))},
                response={"restored": sum(answer.restored.values()), "profile": answer.profile},
            )


def _is_token(value: str) -> bool:
    """A redaction token guardrail itself writes (``<PERSON_1>``, ``<US_SSN>``, ``<PERSON#ab12cd34>``):
    bracketed, naming a known entity type (an upper-case username such as ``J_SMITH_42`` is not one)."""
    from guardrail.policy import BUILTIN_ENTITIES

    match = _OUR_TOKEN.match(value.strip())
    return match is not None and (match["entity"] in BUILTIN_ENTITIES or match["entity"] == "DENY_LIST")


def _released(value: str, corpus: str) -> bool:
    needle = _norm(value)
    if not needle or not corpus:
        return False
    return re.search(rf"(?<!\w){re.escape(needle)}(?!\w)", corpus) is not None


def _replace(text: str, findings: Sequence[Finding], tokens: TokenMap) -> str:
    out: list[str] = []
    pos = 0
    for f in sorted(findings, key=lambda f: f.start):
        if f.start < pos:
            continue
        out += (text[pos : f.start], tokens.token(f.entity, text[f.start : f.end]))
        pos = f.end
    out.append(text[pos:])
    return "".join(out)


# --------------------------------------------------------------------------- streaming redaction


class _StreamRedactor:
    """Releases an LLM's text sentence by sentence, each decided once it is complete."""

    def __init__(self, gate: ResponseGate, answer: _Answer) -> None:
        self._gate = gate
        self._answer = answer
        self._window = int(gate.gr.policy.responses.window)
        self._buffer = ""
        self._held: list[str] = []  # block mode: nothing leaves before the end

    def feed(self, delta: str) -> str:
        if not delta:
            return ""
        self._buffer += delta
        segments, pos = _split(self._buffer, self._window, final=False)
        if not segments:
            return ""
        self._buffer = self._buffer[pos:]
        return self._out(self._gate._decide(self._answer, segments))

    def whole(self, text: str) -> str:
        """``feed(text) + flush()`` in one detection batch (the same segments, so the same result)."""
        self._buffer += text
        return self.flush()

    def flush(self) -> str:
        segments, _ = _split(self._buffer, self._window, final=True)
        self._buffer = ""
        text = self._out(self._gate._decide(self._answer, segments))
        if self._answer.mode == "block":
            held, self._held = "".join(self._held), []
            return WITHHELD if self._answer.blocked else held
        return text

    def _out(self, segments: list[str]) -> str:
        if self._answer.mode == "block":
            self._held.extend(segments)
            return ""
        return "".join(segments)


# --------------------------------------------------------------------------- restoration


class _Restorer:
    """Puts the request's values back in place of its tokens, streaming-safe."""

    _MAX = 64

    def __init__(self, answer: _Answer) -> None:
        self._answer = answer
        self._tokens = answer.tokens
        self._buffer = ""
        self._entities = self._tokens.entities() if self._tokens is not None else []
        self._pattern = _token_pattern(self._entities) if self._entities else None

    def feed(self, delta: str) -> str:
        if self._pattern is None:
            return delta
        self._buffer += delta
        hold = self._hold_from(self._buffer)
        ready, self._buffer = self._buffer[:hold], self._buffer[hold:]
        return self._restore(ready)

    def flush(self) -> str:
        if self._pattern is None:
            return ""
        ready, self._buffer = self._buffer, ""
        return self._restore(ready)

    def _hold_from(self, text: str) -> int:
        """The first position from which the tail could still grow into a token."""
        for i in range(max(0, len(text) - self._MAX), len(text)):
            if i > 0 and text[i - 1].isalnum():
                continue
            if _could_start(text[i:], self._entities):
                return i
        return len(text)

    def _restore(self, text: str) -> str:
        assert self._pattern is not None
        assert self._tokens is not None
        tokens = self._tokens

        def put_back(match: re.Match[str]) -> str:
            raw = match.group(0)
            bracketed = "<" in raw or ">" in raw
            if not bracketed and match.group("sep") != "_":
                return raw  # "person 1" in prose is not a token
            entity = _entity_of(match.group("entity"), self._entities)
            value = tokens.value(entity, int(match.group("n"))) if entity else None
            if value is None:
                return raw  # never restore a token that is not in this request's map
            self._answer.restored[entity or ""] += 1
            return value

        return self._pattern.sub(put_back, text)


def _squash(name: str) -> str:
    return re.sub(r"[\s_]", "", name).upper()


def _entity_of(found: str, entities: Sequence[str]) -> str | None:
    squashed = _squash(found)
    return next((e for e in entities if _squash(e) == squashed), None)


def _token_pattern(entities: Sequence[str]) -> re.Pattern[str]:
    names = []
    for entity in sorted(entities, key=len, reverse=True):
        parts = [re.escape(p) for p in entity.split("_")]
        names.append(r"[\s_]?".join(parts))
    return re.compile(
        rf"(?<![A-Za-z0-9])(?:<\s*)?(?P<entity>{'|'.join(names)})(?P<sep>[\s_]?)(?P<n>\d{{1,6}})(?!\d)(?:\s*>)?",
        re.IGNORECASE,
    )


def _could_start(tail: str, entities: Sequence[str]) -> bool:
    """Whether ``tail`` (the end of the text so far) could be the beginning of a token."""
    rest = tail
    bracket = rest.startswith("<")
    rest = rest.lstrip("<").lstrip()
    if not rest:
        return bracket
    m = re.fullmatch(r"([A-Za-z][A-Za-z\s_]*?)([\s_]?)(\d*)\s*", rest)
    if m is None:
        return False
    letters, digits = _squash(m.group(1)), m.group(3)
    if not digits:
        return any(_squash(e).startswith(letters) for e in entities)
    return any(_squash(e) == letters for e in entities)


# --------------------------------------------------------------------------- the gated LLM


_NAME_TITLES = frozenset({"mr", "mrs", "ms", "dr", "prof", "miss", "mister", "doctor", "the", "and"})


def _name_parts(segment: str, findings: Sequence[Finding]) -> set[str]:
    """The parts (casefolded) of the people's full names found in ``segment``."""
    from guardrail.detection.recognizers.gazetteers import AMBIGUOUS_NAMES

    out: set[str] = set()
    for f in findings:
        if f.entity != "PERSON":
            continue
        words = [w.strip(".,;:'’()").casefold() for w in segment[f.start : f.end].split()]
        if len(words) < 2:
            continue
        out.update(w for w in words if len(w) > 2 and w not in AMBIGUOUS_NAMES and w not in _NAME_TITLES)
    return out


def _with_name_parts(segment: str, findings: list[Finding], names: set[str]) -> list[Finding]:
    """``findings`` plus every capitalised occurrence of a known name part not already covered."""
    if not names:
        return findings
    pattern = re.compile(
        r"(?<![\w@.<-])(?:"
        + "|".join(re.escape(n) for n in sorted(names, key=len, reverse=True))
        + r")(?![\w@>-])",
        re.IGNORECASE,
    )
    extra = [
        Finding(m.start(), m.end(), "PERSON", 0.6, "Propagation")
        for m in pattern.finditer(segment)
        if m.group()[:1].isupper() and not any(f.start < m.end() and m.start() < f.end for f in findings)
    ]
    return sorted([*findings, *extra], key=lambda f: (f.start, f.end)) if extra else findings


def _standalone(gate: ResponseGate, bound: _Answer | None = None) -> tuple[_Answer, bool]:
    answer = bound or _answer.get()
    if answer is not None:
        return answer, False
    answer, _ = gate.begin("")
    return answer, True


class GatedLLM(LLM):
    """An LLM whose every output passes the response guard before anyone else sees it."""

    _inner: Any = PrivateAttr()
    _gate: Any = PrivateAttr()
    # the answer this copy writes for (synthesizers call their LLM lazily, in any thread or context)
    _answer: Any = PrivateAttr(default=None)

    def __init__(self, inner: LLM, gate: ResponseGate, *, answer: _Answer | None = None) -> None:
        kwargs: dict[str, Any] = {"callback_manager": inner.callback_manager}
        for name in ("system_prompt", "messages_to_prompt", "completion_to_prompt", "pydantic_program_mode"):
            value = getattr(inner, name, None)
            if value is not None:
                kwargs[name] = value
        super().__init__(**kwargs)
        self._inner = inner
        self._gate = gate
        self._answer = answer

    @classmethod
    def class_name(cls) -> str:
        return "GuardrailGatedLLM"

    def bound(self, answer: _Answer) -> GatedLLM:
        """A copy that writes for ``answer`` whenever and wherever it is called."""
        return GatedLLM(self._inner, self._gate, answer=answer)

    @property
    def inner(self) -> LLM:
        """The LLM behind the gate."""
        return self._inner  # type: ignore[no-any-return]

    @property
    def metadata(self) -> LLMMetadata:
        return self._inner.metadata  # type: ignore[no-any-return]

    # --- one-shot

    def _gated(self, text: str | None) -> str:
        answer, own = _standalone(self._gate, self._answer)
        answer.note_llm(self._inner)
        out: str = self._gate.redact_text(answer, text or "")
        if own:
            out = self._gate.release_text(answer, out)
            self._gate.finish(answer)
        return out

    def chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        response = self._inner.chat(messages, **kwargs)
        text = self._gated(response.message.content)
        return ChatResponse(message=ChatMessage(role=response.message.role, content=text))

    def complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        response = self._inner.complete(prompt, formatted=formatted, **kwargs)
        return CompletionResponse(text=self._gated(response.text))

    async def achat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        response = await self._inner.achat(messages, **kwargs)
        text = await asyncio.to_thread(contextvars.copy_context().run, self._gated, response.message.content)
        return ChatResponse(message=ChatMessage(role=response.message.role, content=text))

    async def acomplete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        response = await self._inner.acomplete(prompt, formatted=formatted, **kwargs)
        text = await asyncio.to_thread(contextvars.copy_context().run, self._gated, response.text)
        return CompletionResponse(text=text)

    # --- streams

    def _stream(self, deltas: Iterator[str], answer: _Answer, own: bool) -> Iterator[tuple[str, str]]:
        # the answer is taken when the stream is made: it is consumed later, maybe in another thread
        answer.note_llm(self._inner)
        answer.streamed = True
        redactor = self._gate.redactor(answer)
        restorer = self._gate.restorer(answer) if own else None
        text = ""
        try:
            for delta in deltas:
                piece = redactor.feed(delta)
                if restorer is not None:
                    piece = restorer.feed(piece)
                if piece:
                    text += piece
                    yield piece, text
            piece = redactor.flush()
            if restorer is not None:
                piece = restorer.feed(piece) + restorer.flush()
            text += piece
            yield piece, text
        finally:
            if own:
                answer.chars = len(text)
                self._gate.finish(answer)

    def stream_chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponseGen:
        inner = self._inner.stream_chat(messages, **kwargs)
        stream = self._stream((r.delta or "" for r in inner), *_standalone(self._gate, self._answer))

        def gen() -> ChatResponseGen:
            for piece, text in stream:
                yield ChatResponse(message=ChatMessage(role="assistant", content=text), delta=piece)

        return gen()

    def stream_complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponseGen:
        inner = self._inner.stream_complete(prompt, formatted=formatted, **kwargs)
        stream = self._stream((r.delta or "" for r in inner), *_standalone(self._gate, self._answer))

        def gen() -> CompletionResponseGen:
            for piece, text in stream:
                yield CompletionResponse(text=text, delta=piece)

        return gen()

    async def _astream(
        self, deltas: AsyncIterator[str], answer: _Answer, own: bool
    ) -> AsyncIterator[tuple[str, str]]:
        answer.note_llm(self._inner)
        answer.streamed = True
        redactor = self._gate.redactor(answer)
        restorer = self._gate.restorer(answer) if own else None
        text = ""
        ctx = contextvars.copy_context()
        try:
            async for delta in deltas:
                piece = await asyncio.to_thread(ctx.run, redactor.feed, delta)
                if restorer is not None:
                    piece = restorer.feed(piece)
                if piece:
                    text += piece
                    yield piece, text
            piece = await asyncio.to_thread(ctx.run, redactor.flush)
            if restorer is not None:
                piece = restorer.feed(piece) + restorer.flush()
            text += piece
            yield piece, text
        finally:
            if own:
                answer.chars = len(text)
                self._gate.finish(answer)

    async def astream_chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponseAsyncGen:
        answer, own = _standalone(self._gate, self._answer)
        inner = await self._inner.astream_chat(messages, **kwargs)

        async def gen() -> ChatResponseAsyncGen:
            async for piece, text in self._astream(_deltas(inner), answer, own):
                yield ChatResponse(message=ChatMessage(role="assistant", content=text), delta=piece)

        return gen()

    async def astream_complete(
        self, prompt: str, formatted: bool = False, **kwargs: Any
    ) -> CompletionResponseAsyncGen:
        answer, own = _standalone(self._gate, self._answer)
        inner = await self._inner.astream_complete(prompt, formatted=formatted, **kwargs)

        async def gen() -> CompletionResponseAsyncGen:
            async for piece, text in self._astream(_deltas(inner), answer, own):
                yield CompletionResponse(text=text, delta=piece)

        return gen()


async def _deltas(responses: Any) -> AsyncIterator[str]:
    async for response in responses:
        yield response.delta or ""


# --------------------------------------------------------------------------- the release recorder


class ReleaseRecorder(BaseNodePostprocessor):
    """The last node postprocessor of a guarded engine: notes what the principal was released and, for a
    restoring profile, hands the LLM pseudonymised copies."""

    _gate: Any = PrivateAttr()

    def __init__(self, gate: ResponseGate) -> None:
        super().__init__()
        self._gate = gate

    @classmethod
    def class_name(cls) -> str:
        return "GuardrailReleaseRecorder"

    def _postprocess_nodes(
        self, nodes: list[NodeWithScore], query_bundle: QueryBundle | None = None
    ) -> list[NodeWithScore]:
        answer = _answer.get()
        if answer is None:
            raise AccessDenied("a guarded engine's nodes reached its LLM outside an answer (internal error)")
        foreign = [hit for hit in nodes if not answer.is_guarded(hit.node)]
        if foreign:  # not released by a guard in this answer: decided, redacted and audited on the spot
            from guardrail.llama_index.guard import GuardrailPostprocessor

            decided = GuardrailPostprocessor(self._gate.gr)._postprocess_nodes(foreign, query_bundle)
            foreign_ids = {id(hit) for hit in foreign}
            nodes = [hit for hit in nodes if id(hit) not in foreign_ids] + decided
        released: list[NodeWithScore] = self._gate.record(answer, nodes)
        return released
