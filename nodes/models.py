"""The one model factory: every agent gets its chat model here, by agent name and model role.

A model comes from, first match wins:
1. a model object the caller passed for the agent's name, for its model role, or for every agent;
2. a spec: the run's spec for the agent's name, the role's own spec (team file), the run's spec for
   the model role, then the run's default spec.

Specs are 'offline' (the deterministic stand-in), 'openai:NAME' (OpenAI or any compatible server)
and 'PROVIDER:NAME' for any provider LangChain's `init_chat_model` knows (its package installed).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from typing import Any

from langchain_core.language_models import BaseChatModel
from langgraph.errors import NodeTimeoutError
from langgraph.types import RetryPolicy

from nodes.offline_model import OfflineChatModel
from state.context import RunContext
from state.roles import ModelRole, ModelSettings, Role

EVERY_AGENT = "*"
"""Key of the model object that serves every agent not given one of its own."""

Models = BaseChatModel | Mapping[str, BaseChatModel] | None
"""What callers pass as `models=`: one model for every agent, or models by agent name or model role."""


class ModelSpecError(ValueError):
    """A model spec the factory cannot serve."""


def model_objects(models: Models) -> dict[str, BaseChatModel]:
    """`models=` as a mapping; one object becomes the model of every agent."""
    if models is None:
        return {}
    if isinstance(models, BaseChatModel):
        return {EVERY_AGENT: models}
    for key, model in models.items():
        if not isinstance(model, BaseChatModel):
            raise ModelSpecError(f"models[{key!r}] is a {type(model).__name__}, not a LangChain chat model")
    return dict(models)


def get_model(
    model_role: ModelRole,
    ctx: RunContext,
    *,
    agent: str,
    role: Role | None = None,
    objects: Mapping[str, BaseChatModel] | None = None,
    attempt: int = 1,
) -> BaseChatModel:
    """The chat model for `agent` (of team role `role`, if it is one), serving as `model_role`."""
    for key in (agent, model_role, EVERY_AGENT):
        if objects and key in objects:
            return objects[key]
    spec = spec_for(model_role, ctx, agent=agent, role=role)
    settings = role.model_settings if role else ModelSettings()
    provider, name = parse_spec(spec)
    if provider == "offline":
        return OfflineChatModel(role=model_role, name=agent, seed=ctx.seed, latency=ctx.latency,
                                draft_flaw_rate=ctx.draft_flaw_rate, model_name=model_label(None, spec),
                                fail=ctx.fail.get(agent, ctx.fail.get(model_role)), attempt=attempt)
    options: dict[str, Any] = settings.options()
    if ctx.max_tokens:
        options.setdefault("max_tokens", ctx.max_tokens)
    if settings.api_key_env:
        options["api_key"] = os.environ.get(settings.api_key_env)
    if provider == "openai":
        from langchain_openai import ChatOpenAI  # imported on demand: the offline path never needs it

        options.setdefault("base_url", ctx.base_url)
        return ChatOpenAI(model=name, stream_usage=True, max_retries=1, **options)
    from langchain.chat_models import init_chat_model

    return init_chat_model(name, model_provider=provider, **options)


def spec_for(model_role: ModelRole, ctx: RunContext, *, agent: str, role: Role | None = None) -> str:
    """The spec that serves an agent when no model object does."""
    return ctx.models.get(agent) or (role.model if role else None) or ctx.models.get(model_role) or ctx.model


def model_label(chat: BaseChatModel | None, spec: str | None = None) -> str:
    """The model's name as prices know it: from its spec ('openai:gpt-4o' -> 'gpt-4o'; the offline model keeps its
    spec: 'offline', 'offline:mini'), else from the object ('?' when it says none)."""
    if spec is not None:
        provider, name = parse_spec(spec)
        return spec if provider == "offline" else name
    return str(getattr(chat, "model_name", None) or getattr(chat, "model", None) or "?")


def parse_spec(spec: str) -> tuple[str, str]:
    """'offline' -> ('offline', 'offline'); 'offline:mini' -> ('offline', 'mini'), the offline model under another
    name (for trying prices and budgets); 'anthropic:claude-x' -> ('anthropic', 'claude-x')."""
    if spec == "offline":
        return "offline", "offline"
    provider, sep, name = spec.partition(":")
    if not sep or not provider or not name:
        raise ModelSpecError(f"unknown model {spec!r}: use 'offline', 'openai:NAME' or 'PROVIDER:NAME'")
    return provider.replace("-", "_").lower(), name


def check_spec(spec: str) -> None:
    """Fail fast on a spec no installed provider can serve: an unknown provider, or its package missing.

    Only the provider is checked; a missing key or a wrong model name shows when the model is called.
    """
    provider, name = parse_spec(spec)
    if provider in ("offline", "openai"):
        return
    from langchain.chat_models import init_chat_model

    try:
        init_chat_model(name, model_provider=provider)
    except ImportError as exc:
        raise ModelSpecError(f"model {spec!r}: {str(exc).splitlines()[0]}") from None
    except ValueError as exc:
        if str(exc).startswith("Unsupported"):
            raise ModelSpecError(f"unknown model provider {provider!r} in {spec!r}: use 'offline', 'openai:NAME' "
                                 "or a provider LangChain's init_chat_model knows (e.g. anthropic, ollama)") from None
    except Exception:
        return


def is_transient(exc: Exception) -> bool:
    """Failures worth another attempt: dropped connections, timeouts, rate limits, server errors, and an answer
    cut off at its token cap (a sampled model that repeated itself until the cap — the real-model lane saw it —
    usually does not the next time).

    A bad answer, a bad request or a bug is not retried: it would fail the same way again.
    """
    if isinstance(exc, ConnectionError | TimeoutError | NodeTimeoutError):
        return True
    openai = sys.modules.get("openai")  # only loaded when a ChatOpenAI was built, so only then can it raise
    return openai is not None and isinstance(
        exc, openai.APIConnectionError | openai.RateLimitError | openai.InternalServerError
        | openai.LengthFinishReasonError
    )


MODEL_RETRY = RetryPolicy(max_attempts=3, initial_interval=0.5, retry_on=is_transient)
"""Model-calling nodes retry transient failures; bad answers are handled in the node."""
