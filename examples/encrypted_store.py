"""Build, persist and reopen an encrypted LlamaIndex index over Chroma.

Run: python examples/encrypted_store.py [WORKDIR]
Needs the Chroma integration: pip install 'guardrail-privacy[chroma]'.

Chroma receives only ciphertext, the embeddings, the tenant label and keyed tokens; the document ids
(file paths here) and every chunk's text and metadata are sealed. Reopening needs the keyring.
"""

from __future__ import annotations

import sys
from pathlib import Path

import chromadb
from llama_index.core import Document, VectorStoreIndex
from llama_index.vector_stores.chroma import ChromaVectorStore

from guardrail import Guardrail
from guardrail.keys import Keyring
from guardrail.llama_index.hashing import HashingEmbedding

DOCS = [
    Document(
        text="Discharge plan for Harold Finch (MRN 88412095): furosemide 40 mg daily, CHF clinic follow-up.",
        doc_id="/srv/notes/finch-discharge.txt",
        metadata={"subjects": ["patient-88412095"], "classification": "phi"},
    ),
    Document(
        text="Visiting hours on the cardiac ward are 10:00 to 20:00.",
        doc_id="/srv/notes/visiting-hours.txt",
        metadata={"classification": "public"},
    ),
]


def main(workdir: Path) -> None:
    keys, chroma_dir = workdir / "keys", workdir / "chroma"
    if not (keys / "keyring.json").exists():
        Keyring.create(keys)  # or: guardrail keys init keys/
    embed = HashingEmbedding()

    # build: the only change to an ordinary pipeline is storage_context=gr.storage_context(...)
    gr = Guardrail(policy="hipaa-safe-harbor", keyring=keys, tenant="riverside")
    collection = chromadb.PersistentClient(path=str(chroma_dir)).get_or_create_collection("knowledge-base")
    storage = gr.storage_context(vector_store=ChromaVectorStore(chroma_collection=collection))
    VectorStoreIndex.from_documents(DOCS, storage_context=storage, embed_model=embed)

    raw = collection.get(include=["documents", "metadatas"])
    assert all("Harold Finch" not in (d or "") for d in raw["documents"]), "plaintext reached Chroma"
    print("Chroma holds:", raw["metadatas"][0])

    # reopen in a new process-like setting: a new client, a new Guardrail with the same keyring
    gr2 = Guardrail(policy="hipaa-safe-harbor", keyring=keys, tenant="riverside")
    collection2 = chromadb.PersistentClient(path=str(chroma_dir)).get_or_create_collection("knowledge-base")
    storage2 = gr2.storage_context(vector_store=ChromaVectorStore(chroma_collection=collection2))
    index = VectorStoreIndex.from_vector_store(storage2.vector_stores["default"], embed_model=embed)
    # closed by default: without gr.guard(...) the store releases nothing (AccessDenied); reading it raw
    # to check the round trip is maintenance, audited when the Guardrail has an audit log
    with gr2.release_all(reason="example: the reopened store opens"):
        hit = index.as_retriever(similarity_top_k=1).retrieve("discharge plan CHF")[0]
    print("retrieved:", hit.node.get_content())


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "encrypted-store-example"))
