"""Storage growth: a growing log kept as a list in checkpointed state vs in the LangGraph store.

Both graphs take the same steps and record 1 KB per step, checkpointed by SqliteSaver with
durability="sync". The first appends to an `Annotated[list, add]` channel (the saver stores the
whole list again at every step); the second writes each record once to a SqliteStore, as the
troupe journal does. Prints one table: file sizes side by side and their ratio.

    python bench/storage_growth.py [--steps 100 200 400]
"""

from __future__ import annotations

import argparse
import operator
import tempfile
from pathlib import Path
from typing import Annotated, TypedDict

from langgraph.checkpoint.sqlite import SqliteSaver
from langgraph.graph import END, START, StateGraph
from langgraph.runtime import Runtime
from langgraph.store.sqlite import SqliteStore

RECORD = "x" * 1024


class ListState(TypedDict):
    n: int
    log: Annotated[list[str], operator.add]


class StoreState(TypedDict):
    n: int


def _loop(state_type: type, step, steps: int):
    g = StateGraph(state_type)
    g.add_node("step", step)
    g.add_edge(START, "step")
    g.add_conditional_edges("step", lambda s: "step" if s["n"] < steps else END, ["step", END])
    return g


def size_with_list(folder: Path, steps: int) -> int:
    db = folder / "list.sqlite"
    with SqliteSaver.from_conn_string(str(db)) as saver:
        graph = _loop(ListState, lambda s: {"n": s["n"] + 1, "log": [RECORD]}, steps).compile(checkpointer=saver)
        graph.invoke({"n": 0, "log": []}, {"configurable": {"thread_id": "t"}, "recursion_limit": steps + 10},
                     durability="sync")
    return db.stat().st_size


def size_with_store(folder: Path, steps: int) -> int:
    db = folder / "store.sqlite"

    def step(state: StoreState, runtime: Runtime) -> dict:
        assert runtime.store is not None
        runtime.store.put(("log",), f"{state['n']:08d}", {"record": RECORD}, index=False)
        return {"n": state["n"] + 1}

    with SqliteSaver.from_conn_string(str(db)) as saver, SqliteStore.from_conn_string(str(db)) as store:
        store.setup()
        graph = _loop(StoreState, step, steps).compile(checkpointer=saver, store=store)
        graph.invoke({"n": 0}, {"configurable": {"thread_id": "t"}, "recursion_limit": steps + 10}, durability="sync")
    return db.stat().st_size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, nargs="+", default=[100, 200, 400])
    args = parser.parse_args()
    print(f"{'steps':>6} {'list in state (MB)':>19} {'store (MB)':>11} {'ratio':>7}")
    for steps in args.steps:
        with tempfile.TemporaryDirectory() as tmp:
            as_list = size_with_list(Path(tmp), steps)
            in_store = size_with_store(Path(tmp), steps)
        print(f"{steps:>6} {as_list / 1e6:>19.2f} {in_store / 1e6:>11.2f} {as_list / in_store:>6.1f}x")


if __name__ == "__main__":
    main()
