"""The ``Guardrail`` facade: one object per policy that detects and redacts."""

from __future__ import annotations

import os
import threading
import weakref
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from guardrail.errors import ConfigError
from guardrail.findings import Finding, RedactionResult
from guardrail.keys import Keyring
from guardrail.policy import Policy, load_policy
from guardrail.redaction import PseudonymScope, Redactor

if TYPE_CHECKING:
    from guardrail.detection import Detector

__all__ = ["Guardrail"]

# One detector per (policy text, model) per process: building one loads spaCy (seconds).
_DETECTORS: dict[tuple[str, str], Detector] = {}
_DETECTORS_LOCK = threading.Lock()


def _shared_detector(policy: Policy) -> Detector:
    from guardrail.detection.engine import PresidioDetector, model_for

    key = (policy.sha256, model_for(policy))
    with _DETECTORS_LOCK:
        detector = _DETECTORS.get(key)
        if detector is None:
            detector = PresidioDetector(policy)
            _DETECTORS[key] = detector
        return detector


class Guardrail:
    """Detect and redact personal data according to a policy.

    Args:
        policy: a shipped pack name (``default``, ``gdpr``, ``hipaa-safe-harbor``), a YAML path or a
            :class:`~guardrail.policy.Policy`.
        detector: a detector to use instead of the policy's Presidio detector (e.g. a test fake).
        hmac_key: key for the ``hash`` operator.

    Raises:
        PolicyError: the policy is unknown or invalid.
        KeyUnavailable: the policy hashes values and no key is configured.
    """

    def __init__(
        self,
        policy: str | Path | Policy = "default",
        *,
        keyring: str | Path | Keyring | None = None,
        tenant: str = "default",
        audit_log: str | Path | None = None,
        detector: Detector | None = None,
        hmac_key: bytes | None = None,
    ) -> None:
        self.policy = load_policy(policy)
        _protect_logs()
        self._detector = detector
        self.tenant = tenant
        self.keyring = keyring if isinstance(keyring, Keyring) or keyring is None else Keyring.open(keyring)
        if hmac_key is None and self.keyring is not None:
            hmac_key = self.keyring.hmac_key(f"redaction-hash\0{tenant}")
        self._hmac_key = hmac_key
        self.redactor = Redactor(self.policy, hmac_key=hmac_key)
        self._storages: list[weakref.ref[Any]] = []  # storage contexts opened here (for erasure)
        self._persist_dirs: list[Path] = []  # directories reopened here: an erasure reaches them all
        self._ingest_processors: list[dict[str, Any]] = []  # the embedding service (set by embedder())
        self._guard_obj: Any = None
        self.audit: Any = None
        if audit_log is not None:
            from guardrail.audit import AuditLog

            keyring_for_audit = self._require_keyring()
            self.audit = AuditLog.for_keyring(audit_log, keyring_for_audit)
            self._audit_event(
                {"category": "policy.load", "action": "R", "outcome": "success"},
                policy={"id": self.policy.name, "version": self.policy.version, "sha256": self.policy.sha256},
            )

    def __repr__(self) -> str:
        return f"Guardrail(policy={self.policy.id!r}, tenant={self.tenant!r})"

    def __reduce__(self) -> tuple[object, ...]:
        if self.keyring is not None:
            raise TypeError("a Guardrail with a keyring holds key material and cannot be pickled")
        return (Guardrail, (self.policy,), {"tenant": self.tenant})

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.tenant = state["tenant"]

    # ------------------------------------------------------------------ encrypted storage

    def _require_keyring(self) -> Keyring:
        if self.keyring is None:
            raise ConfigError(
                "this needs a keyring: Guardrail(..., keyring='path/to/keyring', tenant='...') "
                "(create one with `guardrail keys init PATH`)"
            )
        return self.keyring

    def storage_context(self, vector_store: Any = None, *, name: str | None = None) -> Any:
        """A LlamaIndex ``StorageContext`` whose docstore, index store and vector store are encrypted,
        and closed by default: they release nodes only inside ``gr.guard(...)`` (or ``release_all``).

        Every record is bound to its place: a vector node to its vector store's collection, a docstore or
        index-store record to the storage's ``name`` and collection, so a ciphertext copied elsewhere does
        not open.

        Args:
            vector_store: any LlamaIndex vector store to wrap (``None``: an encrypted SimpleVectorStore).
            name: the storage's name (default: the vector store's collection; ``"default"`` for a Simple
                store: name each persisted Simple storage, e.g. ``name="kb-restricted"``).

        Raises:
            ConfigError: no keyring was given; an invalid name; a vector store that applies no metadata
                filters (FAISS).
        """
        from guardrail.llama_index.storage import build_storage_context

        return self._track(
            build_storage_context(
                vector_store=vector_store, name=name, **self._storage_args(), **self._closed()
            )
        )

    def _closed(self) -> dict[str, Any]:
        """A closed-by-default release point for a store made or opened here: it releases only inside a
        guard's request (``gr.guard(...)``), whatever the order of calls and whichever Guardrail guards."""
        from guardrail.llama_index.release import GuardedReleasePoint

        return {"release_point": GuardedReleasePoint(self)}

    def release_all(self, reason: str) -> Any:
        """``with gr.release_all(reason="..."):`` lets maintenance code read encrypted stores raw (no
        principal, no redaction): rebuilding a keyword index from the docstore, an export script. Audited
        as ``store.maintenance`` with the reason when an audit log is configured. A guarded retrieval
        inside the block is still decided by its guard.

        Raises:
            ConfigError: no reason given.
        """
        from contextlib import contextmanager

        from guardrail.llama_index.release import release_all

        @contextmanager
        def block() -> Any:
            with release_all(reason):
                if self.audit is not None:
                    self._audit_event(
                        {"category": "store.maintenance", "action": "R", "outcome": "success"},
                        request={"reason": reason[:200]},
                    )
                yield

        return block()

    def _storage_args(self) -> dict[str, Any]:
        from guardrail.crypto import Sealer

        keyring = self._require_keyring()
        return {"sealer": Sealer(keyring), "keyring": keyring, "tenant": self.tenant, **self._shield()}

    def _track(self, storage: Any) -> Any:
        self._storages.append(weakref.ref(storage))  # erase_subject reaches every context opened here
        # remember where the context is persisted: an erasure writes it back there (persisted either way)
        original, target, dirs = type(storage).persist, weakref.ref(storage), self._persist_dirs

        def persist(*args: Any, **kwargs: Any) -> Any:
            alive = target()
            if alive is None:  # pragma: no cover - the context is gone, nothing to persist
                return None
            result = original(alive, *args, **kwargs)
            where = args[0] if args else kwargs.get("persist_dir", "./storage")
            if kwargs.get("fs") is None and isinstance(where, str | os.PathLike):
                alive._guardrail_persist_dir = Path(where)
                if Path(where) not in dirs:
                    dirs.append(Path(where))
            return result

        storage.persist = persist
        return storage

    # ------------------------------------------------------------------ guarded retrieval

    def acting_as(self, principal: Any) -> Any:
        """``with gr.acting_as(Principal(...)):`` sets the principal for this thread or task."""
        from guardrail.access import acting_as

        return acting_as(principal)

    def annotator(self) -> Any:
        """A LlamaIndex transform that detects PII on each node (batched) and stores spans and labels."""
        from guardrail.llama_index.guard import Annotator

        return Annotator(self)

    def ingestion_cache(
        self, *, persist_path: str | Path | None = None, collection: str = "llama_cache"
    ) -> Any:
        """An encrypted LlamaIndex ``IngestionCache`` (keyed keys, sealed values); with ``persist_path``,
        the one persisted there (``cache.persist(path)`` writes ciphertext only).

        Raises:
            ConfigError: no keyring; ``persist_path`` holds plaintext records.
            DecryptionError: the keyring or tenant does not open the persisted cache.
        """
        from guardrail.llama_index.ingestion import open_cache

        return open_cache(self, persist_path, collection)

    def ingestion_pipeline(self, transformations: Sequence[Any] | None = None, **kwargs: Any) -> Any:
        """A LlamaIndex ``IngestionPipeline`` whose cache, docstore and vector store are encrypted.

        Takes ``IngestionPipeline``'s arguments, plus ``storage=`` (a ``gr.storage_context(...)`` whose
        vector store and docstore it writes). The cache defaults to :meth:`ingestion_cache`, the docstore
        to an encrypted one. ``persist(dir)`` / ``load(dir)`` round-trip through the keyring with
        de-duplication intact; ``run(num_workers=N)`` works with :meth:`annotator` (it pickles by
        keyring directory, never key material).

        Raises:
            ConfigError: a plain cache, docstore or vector store was passed; no keyring.
        """
        from guardrail.llama_index.ingestion import build_pipeline

        return build_pipeline(self, transformations, **kwargs)

    @property
    def _guard(self) -> Any:
        if self._guard_obj is None:
            from guardrail.llama_index.guard import Guard

            self._guard_obj = Guard(self)
        return self._guard_obj

    def guard(self, target: Any, *, processors: Sequence[str] = ()) -> Any:
        """Guard a retriever, a query engine, a chat engine (``index.as_chat_engine()``) or a Router /
        SubQuestion query engine: every retrieval is decided per node by the policy, redacted per its
        profile and audited, and fails closed; an engine's answers also pass the response guard (the
        policy's ``responses`` section; see :mod:`guardrail.llama_index.engines`). Returns a guarded copy
        of the same kind (a chat engine: a ``GuardedChatEngine`` with one history per principal).

        Any retriever works, composed ones included (``QueryFusionRetriever`` with a ``BM25Retriever``,
        ``AutoMergingRetriever``, ``RecursiveRetriever``): what it returns is only what the encrypted
        stores released in this request, as sanitised copies, plus any other node decided on the spot.
        The retriever passed in is never modified (its filters are kept and ANDed on a copy).

        Each retrieval event names the processors that receive what is released: a query engine's LLM
        and embed model, matched against the policy's ``processors``, and those named in ``processors``
        (e.g. the LLM you send a plain retriever's chunks to).

        Raises:
            ConfigError: no audit log is configured (guarded retrieval always writes one).
            EngineRefused: an agent, a ``CustomQueryEngine`` or a chat engine with pre-filled or shared
                memory (the message says what to do instead).
        """
        from llama_index.core.base.base_retriever import BaseRetriever

        from guardrail.llama_index.guard import GuardedRetriever

        if self.audit is None:
            raise ConfigError("guarded retrieval writes an audit record for every retrieval: pass audit_log=")
        # stores made or opened through any Guardrail are closed from birth (no hook to install here)
        if isinstance(target, BaseRetriever):
            from guardrail.audit.events import processor_members

            guarded = GuardedRetriever(target, self)
            guarded._processors = processor_members(
                self.policy, embed_model=getattr(target, "_embed_model", None), named=processors
            )
            return guarded
        # query engines, chat engines, Router/SubQuestion: retrieval, answers and memory guarded
        from guardrail.llama_index.engines import guard_target

        return guard_target(target, self, processors=processors)

    def postprocessor(self) -> Any:
        """A node postprocessor for query engines that cannot be rebuilt."""
        from guardrail.llama_index.guard import GuardrailPostprocessor

        if self.audit is None:
            raise ConfigError("guarded retrieval writes an audit record for every retrieval: pass audit_log=")
        return GuardrailPostprocessor(self)

    def trace(self, handler: Any = None, *, callback_manager: Any = None) -> Any:
        """Attach a tracing handler (Phoenix, Langfuse, your own) that receives only sanitised payloads.

        ``handler`` is a LlamaIndex ``BaseEventHandler`` or ``BaseSpanHandler`` (added to the root
        dispatcher) or a legacy ``BaseCallbackHandler`` such as ``LlamaDebugHandler`` (added to
        ``callback_manager``, by default ``Settings.callback_manager``). Queries, prompts and responses
        are redacted with the profile the acting principal gets for PHI (strictest without one), nodes
        appear only as a guard released them to that principal (else as a stub without text), and
        embeddings are dropped. With no ``handler``, every handler already attached (e.g. by an
        instrumentor) is put behind the sanitiser. Returns the wrapper(s).

        Raises:
            ConfigError: ``handler`` is not a LlamaIndex handler.
        """
        from guardrail.llama_index.tracing import trace

        return trace(self, handler, callback_manager=callback_manager)

    def watch_unguarded(self) -> Any:
        """Record retrievals that bypass the guard as ``rag.unguarded`` audit events.

        It detects; it cannot block (LlamaIndex's dispatcher swallows handler exceptions).
        """
        from guardrail.llama_index.guard import install_unguarded_detector

        return install_unguarded_detector(self)

    def canaries(self, alert: Any = None, *, llm_outputs: bool | None = None) -> Any:
        """Watch for the keyring's canaries (``guardrail canary make``) in everything released here:
        nodes at the release point, ``rag.unguarded`` retrievals (with :meth:`watch_unguarded`), LLM
        answers. Each canary seen in clear writes one ``canary.tripped`` audit event (where, canary id,
        entity types; never the value) and calls ``alert`` with a
        :class:`~guardrail.canaries.CanaryAlert`. Returns the :class:`~guardrail.canaries.CanaryWatch`
        (``.close()`` stops it). ``llm_outputs=True`` also watches every raw LLM answer (``llm.output``)
        where a response guard watches what users receive (default: only without a response guard).

        Raises:
            ConfigError: no keyring or audit log, or no canary is registered with the keyring.
        """
        from guardrail.canaries import start_watch

        return start_watch(self, alert=alert, llm_outputs=llm_outputs)

    def _new_scope(self) -> PseudonymScope:
        return PseudonymScope()

    def _profile_redactor(self, profile: str) -> tuple[Redactor, frozenset[str]]:
        from guardrail.policy import PseudonymizeOp, RedactionSettings

        if profile == "redact":
            return self.redactor, frozenset()
        if profile == "pseudonymize":
            settings = RedactionSettings(default=PseudonymizeOp(operator="pseudonymize"))
            keep: frozenset[str] = frozenset()
        else:
            table = self.policy.access.profiles[profile]
            keep = frozenset(e for e, op in table.items() if op == "keep")
            ops = dict(self.policy.redaction.operators)
            ops.update({e: {"operator": op} for e, op in table.items() if op != "keep"})  # type: ignore[misc]
            settings = RedactionSettings.model_validate(
                {"default": self.policy.redaction.default, "operators": ops}
            )
        policy = self.policy.model_copy(update={"redaction": settings})
        return Redactor(policy, hmac_key=self._hmac_key), keep

    def _subject_ref(self, subject: str) -> str:
        keyring = self._require_keyring()
        return keyring.token(self.tenant, "subject-ref", subject, length=16)

    def _audit_event(self, event: dict[str, Any], **fields: Any) -> str:
        from guardrail import __version__

        record = {
            "event": event,
            # the tenant is configuration, not personal data: subject reports use it to say where a
            # subject's events are when asked under another tenant
            "source": {"app": f"guardrail@{__version__}", "component": "guardrail", "tenant": self.tenant},
            **fields,
        }
        return str(self.audit.append(record, sync=True))

    def _audit_retrieval(
        self,
        request: Any,
        *,
        query: str,
        k: int,
        started: float,
        denied: bool = False,
        unguarded: bool = False,
    ) -> None:
        import time

        from guardrail.audit.events import purpose_member, retrieval_extras, withheld_by_rule
        from guardrail.llama_index.guard import RetrievalBlocked, query_mac

        if self.audit is None:
            return
        decisions = request.decisions
        allowed = [d for d in decisions if d[1].allowed]
        outcome = "denied" if denied or (decisions and not allowed) else "success"
        rule_ids = sorted({r for _, d, _ in decisions for r in d.rule_ids})
        counts: dict[str, int] = {}
        for _, _, c in decisions:
            for entity, n in c.items():
                counts[entity] = counts.get(entity, 0) + n
        principal = request.principal
        subjects = sorted({self._subject_ref(s) for r in request.resources.values() for s in r.subjects})
        key = self.keyring.hmac_key("audit-query") if self.keyring is not None else bytes(32)
        summary = (
            "deny" if outcome == "denied" else ("allow" if len(allowed) == len(decisions) else "partial")
        )
        try:
            self._audit_event(
                {
                    "category": "rag.unguarded" if unguarded else "rag.retrieval",
                    "action": "R",
                    "outcome": outcome,
                },
                actor={"ref": principal.id, "type": "user", "roles": list(principal.roles)}
                if principal
                else {"ref": "anonymous", "type": "user", "roles": []},
                purpose=purpose_member(self.policy, principal.purpose if principal else None),
                policy={
                    "id": self.policy.name,
                    "version": self.policy.version,
                    "sha256": self.policy.sha256,
                    "decision": summary,
                    "rule_ids": rule_ids,
                    "redaction_profile": sorted({d.redaction for _, d, _ in allowed}),
                    # classifications the query was restricted to before the store released anything
                    "prefilter": request.prefilter if request.prefilter is not None else "none",
                },
                subjects=subjects,
                resources=[
                    {
                        "type": "chunk",
                        "id": node_id,
                        "labels": [request.resources[node_id].classification]
                        if node_id in request.resources
                        else [],
                        "decision": d.effect,
                        **({"profile": d.redaction} if d.allowed else {}),
                    }
                    for node_id, d, _ in decisions
                ]
                + [
                    {"type": "chunk", "id": node_id, "labels": ["erased"], "decision": "erased"}
                    for node_id in request.erased
                ],
                query={"mac": query_mac(key, query), "chars": len(query)},
                retrieval={
                    "k": k,
                    "returned": len(allowed),
                    "denied": len(decisions) - len(allowed),
                    "redacted": sum(1 for _, _, c in allowed if c),
                    "erased": len(request.erased),
                    "withheld": withheld_by_rule(getattr(request, "withheld", None)),
                    "latency_ms": round((time.perf_counter() - started) * 1000, 3),
                },
                pii={"detector": "presidio", "counts": counts},
                **_disclosure(principal, released=len(allowed), denied=outcome == "denied"),
                **retrieval_extras(request, released=len(allowed)),
            )
        except Exception as exc:  # noqa: BLE001 - no audit record, no release
            raise RetrievalBlocked(f"the audit record could not be written ({type(exc).__name__})") from None

    def _audit_ingest(self, nodes: Sequence[Any], findings: Sequence[Sequence[Finding]]) -> None:
        if self.audit is None:
            return
        from guardrail.access import Resource

        counts: dict[str, int] = {}
        for found in findings:
            for f in found:
                counts[f.entity] = counts.get(f.entity, 0) + 1
        from guardrail.audit.events import counts_by_subject

        resources = [Resource.from_metadata(n.metadata) for n in nodes]
        per_subject = counts_by_subject(
            ([self._subject_ref(s) for s in r.subjects], found)
            for r, found in zip(resources, findings, strict=True)
        )
        self._audit_event(
            {"category": "rag.ingest", "action": "C", "outcome": "success"},
            subjects=sorted({self._subject_ref(s) for r in resources for s in r.subjects}),
            resources=[  # purposes and subject refs per chunk: retention periods and key shredding
                {
                    "type": "chunk",
                    "id": n.node_id,
                    "labels": [r.classification],
                    **({"purposes": list(r.purposes)} if r.purposes else {}),
                    **(
                        {"subjects": sorted({self._subject_ref(s) for s in r.subjects})} if r.subjects else {}
                    ),
                }
                for n, r in zip(nodes, resources, strict=True)
            ],
            pii={"detector": "presidio", "counts": counts, **per_subject},
            **({"processors": self._ingest_processors} if self._ingest_processors else {}),
        )

    def _audit_unguarded(self, returned: int, *, denied: bool = False) -> None:
        """A retrieval that bypassed every guard: ``denied`` when an encrypted store refused it."""
        if self.audit is not None:
            from guardrail.access import current_principal

            principal = current_principal()
            self._audit_event(
                {"category": "rag.unguarded", "action": "R", "outcome": "denied" if denied else "success"},
                actor={"ref": principal.id, "type": "user", "roles": list(principal.roles)}
                if principal
                else {"ref": "anonymous", "type": "user", "roles": []},
                retrieval={"k": returned, "returned": 0 if denied else returned, "denied": 0, "redacted": 0},
            )

    def close(self) -> None:
        """Flush the audit log and write a signed checkpoint covering every record."""
        if self.audit is not None:
            self.audit.close()

    def _shield(self) -> dict[str, Any]:
        settings = self.policy.storage
        if not settings.embedding_shield:
            return {}
        from guardrail.embeddings import EmbeddingShield

        keyring = self._require_keyring()
        shield = EmbeddingShield.for_tenant(keyring, self.tenant, strength=settings.shield_strength)
        return {"shield": shield, "overfetch": settings.overfetch}

    def embedder(self, embed_model: Any) -> Any:
        """A LlamaIndex transform that embeds nodes per the policy's ``storage.embed`` switch.

        With ``redacted`` it embeds the redacted text (the sealed node keeps the original); with
        ``plaintext`` it embeds the text as it is. Put it last in ``transformations``. Ingestion events
        then name the embedding service as a processor that received the document text (matched against
        the policy's ``processors``; an undeclared remote one says so).
        """
        from guardrail.audit.events import processor_members
        from guardrail.llama_index.embedding import RedactedEmbedding

        received = "document text (redacted)" if self.policy.storage.embed == "redacted" else "document text"
        self._ingest_processors = [
            {**m, "received": received} for m in processor_members(self.policy, embed_model=embed_model)
        ]

        if self.policy.storage.embed == "redacted":
            return RedactedEmbedding(self, embed_model)
        return embed_model  # a LlamaIndex embedding model is itself a transform

    def load_storage_context(
        self, persist_dir: str | Path, *, vector_store: Any = None, name: str | None = None
    ) -> Any:
        """Reopen a storage context persisted with ``storage.persist(persist_dir)``.

        Args:
            name: the storage's name (default: the one persisted with it).

        Raises:
            KeyringError: the keyring or tenant does not open the store.
        """
        from guardrail.llama_index.storage import load_storage_context

        storage = load_storage_context(
            persist_dir, vector_store=vector_store, name=name, **self._storage_args(), **self._closed()
        )
        # an erasure writes a reopened storage back to its directory
        storage._guardrail_persist_dir = Path(persist_dir)  # type: ignore[attr-defined]
        if Path(persist_dir) not in self._persist_dirs:
            self._persist_dirs.append(Path(persist_dir))
        return self._track(storage)

    def erase_subject(
        self,
        subject: str,
        *,
        stores: Sequence[str | Path] = (),
        vault: str | Path | None = None,
        actor: str | None = None,
        request_ref: str | None = None,
        certificate: str | Path | None = None,
    ) -> Any:
        """Erase a data subject (GDPR Art. 17): delete their nodes and docstore records from every storage
        context this object opened (those reopened from a directory are written back to it) and from the
        persisted ``stores`` directories, destroy the subject's key (crypto-shredding), delete their
        token-vault entries, list the dataset exports that included them, and record a ``dsar.erasure``
        event with ``actor`` and ``request_ref``; with ``certificate``, write the signed certificate there.
        Returns an :class:`~guardrail.erasure.ErasureResult`.

        Raises:
            ConfigError: no keyring; a certificate without an audit log.
        """
        from guardrail.erasure import erase_subject

        keyring = self._require_keyring()
        alive = [s for s in (ref() for ref in self._storages) if s is not None]
        open_dirs = {getattr(s, "_guardrail_persist_dir", None) for s in alive}
        # a reopened directory whose context is gone is erased on disk directly
        stores = [*stores, *(d for d in self._persist_dirs if d not in open_dirs and d not in stores)]
        audit_dir = None
        if self.audit is not None:
            self.audit.close()  # the erasure event goes through its own writer, after every pending record
            audit_dir = self.audit.directory
        result = erase_subject(
            subject,
            keyring=keyring,
            tenant=self.tenant,
            storages=alive,
            stores=stores,
            vault=vault,
            audit_log=audit_dir,
            actor=actor,
            request_ref=request_ref,
            certificate=certificate,
            source="guardrail",
        )
        for storage in alive:
            persist_dir = getattr(storage, "_guardrail_persist_dir", None)  # set by load_storage_context
            if persist_dir is not None:
                storage.persist(persist_dir=str(persist_dir))  # persisted either way
        if audit_dir is not None:
            from guardrail.audit import AuditLog

            self.audit = AuditLog.for_keyring(audit_dir, keyring)
        return result

    @property
    def detector(self) -> Detector:
        """The detector (built on first use, then shared by every Guardrail with the same policy)."""
        if self._detector is None:
            self._detector = _shared_detector(self.policy)
        return self._detector

    def detect(self, text: str) -> list[Finding]:
        """Personal data in ``text``: non-overlapping findings sorted by offset.

        Raises:
            DetectionError: detection failed (nothing should be released).
            DetectorUnavailable: the spaCy model is not installed.
        """
        return self.detector.detect(text)

    def detect_batch(self, texts: Sequence[str]) -> list[list[Finding]]:
        """``detect`` for many texts, with the NLP model batched."""
        return self.detector.detect_batch(list(texts))

    def redact(self, text: str, *, scope: PseudonymScope | None = None) -> RedactionResult:
        """``text`` with every finding redacted by the policy's operators.

        Args:
            text: the text; it is not modified.
            scope: pseudonyms are consistent within a scope; by default each call is its own scope.
        """
        return self.redactor.redact(text, self.detect(text), scope=scope)

    def redact_batch(
        self, texts: Sequence[str], *, scope: PseudonymScope | None = None
    ) -> list[RedactionResult]:
        """``redact`` for many texts; with a ``scope``, pseudonyms are consistent across all of them."""
        results = self.detect_batch(texts)
        return [
            self.redactor.redact(t, f, scope=scope if scope is not None else PseudonymScope())
            for t, f in zip(texts, results, strict=True)
        ]


def _protect_logs() -> None:
    """LlamaIndex's own log lines carry chunk text: rewritten while guardrail is in use."""
    from guardrail.logs import protect_logs

    protect_logs()


def _disclosure(principal: Any, *, released: int, denied: bool) -> dict[str, Any]:
    """A ``disclosure`` member for a retrieval on behalf of a recipient outside the organisation.

    Set ``Principal(..., attributes={"recipient": "State cancer registry", "description": "..."})``: the
    retrieval event then records the disclosure (HIPAA 164.528 accounting, ``guardrail report
    disclosures``). Nothing is recorded when nothing was released.
    """
    attributes = getattr(principal, "attributes", None) or {}
    recipient = attributes.get("recipient")
    if not recipient or denied or not released:
        return {}
    return {
        "disclosure": {
            "recipient": str(recipient),
            "description": str(attributes.get("description") or f"{released} record chunk(s) released"),
            "purpose": str(principal.purpose),
        }
    }
