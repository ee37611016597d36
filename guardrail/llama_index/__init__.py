"""LlamaIndex integration: encrypted stores (and, later, the annotator, guard and postprocessor).

This subpackage is the only place in guardrail that imports ``llama_index``.
"""

from guardrail.llama_index.stores import EncryptedKVStore, EncryptedVectorStore, ReleaseHook

__all__ = ["EncryptedKVStore", "EncryptedVectorStore", "ReleaseHook"]
