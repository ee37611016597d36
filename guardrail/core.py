"""The ``Guardrail`` facade: one object per policy that detects and redacts."""

from __future__ import annotations

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
        detector: Detector | None = None,
        hmac_key: bytes | None = None,
    ) -> None:
        self.policy = load_policy(policy)
        self._detector = detector
        self.tenant = tenant
        self.keyring = keyring if isinstance(keyring, Keyring) or keyring is None else Keyring.open(keyring)
        if hmac_key is None and self.keyring is not None:
            hmac_key = self.keyring.hmac_key(f"redaction-hash\0{tenant}")
        self.redactor = Redactor(self.policy, hmac_key=hmac_key)
        self._storages: list[weakref.ref[Any]] = []  # storage contexts opened here (for erasure)

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

    def storage_context(self, vector_store: Any = None) -> Any:
        """A LlamaIndex ``StorageContext`` whose docstore, index store and vector store are encrypted.

        Args:
            vector_store: any LlamaIndex vector store to wrap (``None``: an encrypted SimpleVectorStore).

        Raises:
            ConfigError: no keyring was given.
        """
        from guardrail.crypto import Sealer
        from guardrail.llama_index.storage import build_storage_context

        keyring = self._require_keyring()
        storage = build_storage_context(
            sealer=Sealer(keyring),
            keyring=keyring,
            tenant=self.tenant,
            vector_store=vector_store,
            **self._shield(),
        )
        self._storages.append(weakref.ref(storage))
        return storage

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
        ``plaintext`` it embeds the text as it is. Put it last in ``transformations``.
        """
        from guardrail.llama_index.embedding import RedactedEmbedding

        if self.policy.storage.embed == "redacted":
            return RedactedEmbedding(self, embed_model)
        return embed_model  # a LlamaIndex embedding model is itself a transform

    def load_storage_context(self, persist_dir: str | Path, *, vector_store: Any = None) -> Any:
        """Reopen a storage context persisted with ``storage.persist(persist_dir)``.

        Raises:
            KeyringError: the keyring or tenant does not open the store.
        """
        from guardrail.crypto import Sealer
        from guardrail.llama_index.storage import load_storage_context

        keyring = self._require_keyring()
        storage = load_storage_context(
            persist_dir,
            sealer=Sealer(keyring),
            keyring=keyring,
            tenant=self.tenant,
            vector_store=vector_store,
            **self._shield(),
        )
        self._storages.append(weakref.ref(storage))
        return storage

    def erase_subject(self, subject: str) -> Any:
        """Delete a data subject's nodes from every storage context this object opened, and destroy
        the subject's key (GDPR Art. 17 erasure with crypto-shredding). Returns an ``ErasureReport``."""
        from guardrail.llama_index.storage import erase_subject

        keyring = self._require_keyring()
        alive = [s for s in (ref() for ref in self._storages) if s is not None]
        return erase_subject(alive, keyring=keyring, tenant=self.tenant, subject=subject)

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
