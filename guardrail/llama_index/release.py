"""The release point of every encrypted store made or opened through a ``Guardrail``: closed by default.

A store made by ``gr.storage_context()`` or opened by ``gr.load_storage_context()`` (any ``Guardrail`` on
the keyring, in any order of calls) gets a :class:`GuardedReleasePoint` at birth. It releases a node only
inside a request that a guard (``gr.guard(...)``) opened for a principal: the guard's policy decides, and
what leaves is a fresh, sanitised copy (:func:`sanitise`). Anything else that reads the store (a plain
``index.as_retriever()``, a keyword index built from the docstore, a postprocessor-only query engine) gets
:class:`~guardrail.access.AccessDenied`, and the refusal is audited (``rag.unguarded``, outcome denied).

Maintenance that must read sealed records (re-encryption, erasure and exports use raw internal paths that
never pass this point; your own scripts, a BM25 index over the docstore) enters
``with gr.release_all(reason=...)``: audited (``store.maintenance``), raw nodes, and a guarded request
inside it is still decided by its guard.
"""

from __future__ import annotations

import contextlib
import contextvars
import hashlib
import json
import re
import weakref
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from llama_index.core.schema import (
    DEFAULT_METADATA_TMPL,
    DEFAULT_TEXT_NODE_TMPL,
    BaseNode,
    ImageNode,
    IndexNode,
    Node,
    NodeRelationship,
    RelatedNodeInfo,
    TextNode,
)

from guardrail.access import AccessDenied
from guardrail.errors import ConfigError
from guardrail.llama_index.stores import ReleasePoint

__all__ = [
    "GuardedReleasePoint",
    "content_digest",
    "maintenance_reason",
    "release_all",
]

#: the request a guard opened (``guardrail.llama_index.guard._Request``), if any
_request: contextvars.ContextVar[Any] = contextvars.ContextVar("guardrail_request", default=None)
#: the reason of an audited ``release_all`` block, if one is active
_maintenance: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "guardrail_maintenance", default=None
)

UNGUARDED_MESSAGE = (
    "this encrypted store releases nothing outside a guard: retrieve through gr.guard(retriever) or "
    "gr.guard(query_engine) inside `with gr.acting_as(Principal(...))`; maintenance code that must read "
    "the records uses `with gr.release_all(reason=...)` (audited)"
)


def maintenance_reason() -> str | None:
    return _maintenance.get()


@contextmanager
def release_all(reason: str) -> Iterator[None]:
    """Raw release for maintenance (the audited entry point is ``Guardrail.release_all``)."""
    if not reason or not isinstance(reason, str):
        raise ConfigError("release_all needs a reason (it is recorded in the audit log)")
    token = _maintenance.set(reason)
    try:
        yield
    finally:
        _maintenance.reset(token)


class GuardedReleasePoint(ReleasePoint):
    """A store's release point that is closed unless a guard's request (or maintenance) is active."""

    def __init__(self, owner: Any) -> None:
        super().__init__()
        self._owners: list[weakref.ref[Any]] = [weakref.ref(owner)]
        #: reads a docstore node's labels without releasing it (set by build_storage_context)
        self.peek: Callable[[str], dict[str, Any] | None] | None = None

    def __repr__(self) -> str:
        return "GuardedReleasePoint(closed unless guarded)"

    def set_hook(self, hook: Any, on_erased: Callable[[str], None] | None = None) -> None:
        raise ConfigError(
            "the release point of a store made or opened through a Guardrail cannot be replaced: read "
            "through gr.guard(...), or use `with gr.release_all(reason=...)` for maintenance"
        )

    def release(self, node: BaseNode, *, score: float | None) -> BaseNode | None:
        request = _request.get()
        if request is not None:
            return request.guard.release(request, node, point=self)  # type: ignore[no-any-return]
        if _maintenance.get() is not None:
            return node
        self.refuse()
        raise AssertionError("unreachable")  # pragma: no cover

    def refuse(self) -> None:
        """Audit an unguarded read (``rag.unguarded``, denied) and raise AccessDenied."""
        for ref in self._owners:
            owner = ref()
            if owner is not None and getattr(owner, "audit", None) is not None:
                with contextlib.suppress(Exception):  # the read is refused either way
                    owner._audit_unguarded(0, denied=True)
                break
        raise AccessDenied(UNGUARDED_MESSAGE, rule_ids=["unguarded"])

    def erased(self, record: str) -> None:
        request = _request.get()
        if request is not None:
            request.erased.append(request.guard._rid(record))


# --------------------------------------------------------------------------- keyed references

_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.IGNORECASE)
_PATHLIKE = re.compile(r"^(?:[A-Za-z]:[\\/]|/|~/|\.{1,2}[\\/]|file:/)|[\\/][^\\/\s]+\.[A-Za-z0-9]{1,5}$")
#: metadata keys that name files (SimpleDirectoryReader and friends): released as keyed references
PATH_KEYS = frozenset({"file_path", "file_name", "filename", "file", "path", "source_path", "doc_path"})
_REFS: OrderedDict[str, str] = OrderedDict()  # ref -> original id, for lookups by a released id
_REFS_MAX = 100_000


def needs_ref(node_id: str) -> bool:
    """A node id or document id is released as is only when it is a UUID (LlamaIndex's default)."""
    return not _UUID.fullmatch(node_id)


def keyed_ref(keyring: Any, tenant: str, value: str) -> str:
    ref = "ref-" + str(keyring.token(tenant, "release-ref", value, length=24))
    if ref not in _REFS:
        _REFS[ref] = value
        if len(_REFS) > _REFS_MAX:
            _REFS.popitem(last=False)
    return ref


def original_id(key: str) -> str:
    """The id a released keyed reference stands for (``key`` itself when it is not one)."""
    if key.startswith("ref-"):
        return _REFS.get(key, key)
    return key


def released_id(keyring: Any, tenant: str, node_id: str) -> str:
    return keyed_ref(keyring, tenant, node_id) if needs_ref(node_id) else node_id


def is_pathlike(value: str) -> bool:
    return bool(_PATHLIKE.search(value)) and len(value) < 4096


# --------------------------------------------------------------------------- digests


def text_digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:24]


def public_metadata(metadata: dict[str, Any] | None) -> dict[str, Any]:
    return {k: v for k, v in (metadata or {}).items() if not str(k).startswith("_gr_")}


def metadata_digest(metadata: dict[str, Any] | None) -> str:
    canonical = json.dumps(
        public_metadata(metadata), sort_keys=True, ensure_ascii=False, default=repr, separators=(",", ":")
    )
    return text_digest(canonical)


def content_digest(node: BaseNode) -> str:
    """What a released copy is bound to: its id, text and metadata."""
    canonical = json.dumps(
        [node.node_id, node.get_content(), node.metadata],
        sort_keys=True,
        ensure_ascii=False,
        default=repr,
        separators=(",", ":"),
    )
    return text_digest(canonical)


# --------------------------------------------------------------------------- metadata leaves

#: labels the policy reads: kept as they are (``subjects`` become keyed references)
KEPT_LABELS = frozenset({"tenant", "classification", "purposes"})
SUBJECT_KEYS = frozenset({"subjects", "subject"})


def leaves(metadata: dict[str, Any] | None) -> list[tuple[str, str]]:
    """Every place personal data can sit in metadata, as ``(path, text to detect)``: string and number
    values at any depth (numbers with their key as context), and keys. Labels and ``_gr_`` keys are
    left out; file-path keys are keyed, never detected."""
    out: list[tuple[str, str]] = []

    def walk(value: Any, path: str, key: str) -> None:
        if value is None or isinstance(value, bool):
            return
        if isinstance(value, str):
            if value:
                out.append((path, value))
            return
        if isinstance(value, int | float):
            out.append((path, f"{key}: {value}"))
            return
        if isinstance(value, dict):
            for k, v in value.items():
                ks = str(k)
                out.append((f"{path}.{ks}#key", ks))
                walk(v, f"{path}.{ks}", ks)
            return
        if isinstance(value, list | tuple | set):
            for i, v in enumerate(value):
                walk(v, f"{path}[{i}]", key)
            return
        out.append((path, str(value)))

    for k, v in (metadata or {}).items():
        ks = str(k)
        if ks.startswith("_gr_") or ks in KEPT_LABELS or ks in SUBJECT_KEYS:
            continue
        out.append((f"{ks}#key", ks))
        if ks in PATH_KEYS:
            continue
        walk(v, ks, ks)
    return out


# --------------------------------------------------------------------------- the released copy


def fresh_copy(
    node: BaseNode,
    *,
    node_id: str,
    text: str,
    metadata: dict[str, Any],
    relationships: dict[NodeRelationship, Any],
) -> BaseNode:
    """A new node object: templates reset, no embedding, no media, no embedded object."""
    excluded_llm = [k for k in node.excluded_llm_metadata_keys if k in metadata]
    excluded_embed = [k for k in node.excluded_embed_metadata_keys if k in metadata]
    for key in ("tenant", "classification", "purposes", "subjects", "subject", "labels"):
        if key in metadata:
            if key not in excluded_llm:
                excluded_llm.append(key)
            if key not in excluded_embed:
                excluded_embed.append(key)
    common: dict[str, Any] = {
        "id_": node_id,
        "metadata": metadata,
        "relationships": relationships,
        "excluded_llm_metadata_keys": excluded_llm,
        "excluded_embed_metadata_keys": excluded_embed,
        "metadata_template": DEFAULT_METADATA_TMPL,
        "metadata_seperator": "\n",
        "text_template": DEFAULT_TEXT_NODE_TMPL,
    }
    if isinstance(node, IndexNode):
        return IndexNode(text=text, index_id=node.index_id, **common)
    if isinstance(node, ImageNode | TextNode):
        start = getattr(node, "start_char_idx", None)
        end = getattr(node, "end_char_idx", None)
        return TextNode(text=text, start_char_idx=start, end_char_idx=end, **common)
    if isinstance(node, Node):
        from llama_index.core.schema import Document, MediaResource

        if isinstance(node, Document):
            return Document(text_resource=MediaResource(text=text), **common)
        return Node(text_resource=MediaResource(text=text), **common)
    return TextNode(text=text, **common)


def related(info: Any, new_id: str) -> RelatedNodeInfo:
    """A relationship cut to its id (and type): no metadata, no hash."""
    node_type = getattr(info, "node_type", None)
    return RelatedNodeInfo(node_id=new_id, node_type=node_type)
