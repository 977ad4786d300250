"""The one model factory: every agent gets its chat model here, by model role."""

from __future__ import annotations

import sys

from langchain_core.language_models import BaseChatModel
from langgraph.errors import NodeTimeoutError

from nodes.offline_model import OfflineChatModel
from state.context import RunContext
from state.roles import MODEL_ROLES, ModelRole


class ModelSpecError(ValueError):
    """A model spec the factory cannot serve."""


def spec_for(role: ModelRole, ctx: RunContext) -> str:
    """The model spec that serves `role` in this run: its override, else the run's default."""
    return ctx.models.get(role, ctx.model)


def check_specs(ctx: RunContext) -> None:
    """Fail fast, before a run starts, on unknown roles or malformed specs."""
    unknown = set(ctx.models) - set(MODEL_ROLES)
    if unknown:
        raise ModelSpecError(f"unknown model role(s) {sorted(unknown)}; known: {', '.join(MODEL_ROLES)}")
    for spec in {ctx.model, *ctx.models.values()}:
        _parse(spec)


def get_model(role: ModelRole, ctx: RunContext, *, attempt: int = 1, agent: str | None = None) -> BaseChatModel:
    """Build the chat model for an agent of `role`.

    'offline' gives the deterministic offline model; 'openai:<name>' a `ChatOpenAI` that
    talks to OpenAI or to any compatible server at `ctx.base_url`. `agent` names the caller,
    so the offline model's injected failures can target one agent rather than a whole role.
    """
    provider, name = _parse(spec_for(role, ctx))
    if provider == "offline":
        return OfflineChatModel(
            role=role,
            name=agent or role,
            seed=ctx.seed,
            latency=ctx.latency,
            draft_flaw_rate=ctx.draft_flaw_rate,
            fail=ctx.fail.get(agent or role, ctx.fail.get(role)),
            attempt=attempt,
        )
    from langchain_openai import ChatOpenAI  # imported on demand: the offline path never needs it

    return ChatOpenAI(model=name, base_url=ctx.base_url, stream_usage=True, max_retries=1)


def is_transient(exc: Exception) -> bool:
    """Failures worth another attempt: dropped connections, timeouts, rate limits, server errors.

    A bad answer, a bad request or a bug is not retried: it would fail the same way again.
    """
    if isinstance(exc, ConnectionError | TimeoutError | NodeTimeoutError):
        return True
    openai = sys.modules.get("openai")  # only loaded when a ChatOpenAI was built, so only then can it raise
    return openai is not None and isinstance(
        exc, openai.APIConnectionError | openai.RateLimitError | openai.InternalServerError
    )


def _parse(spec: str) -> tuple[str, str]:
    if spec == "offline":
        return "offline", "offline"
    provider, sep, name = spec.partition(":")
    if provider != "openai" or not sep or not name:
        raise ModelSpecError(f"unknown model {spec!r}: use 'offline' or 'openai:<model name>'")
    return provider, name
