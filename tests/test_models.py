"""The model layer's retry rule: transient failures are retried, permanent ones are not."""

from __future__ import annotations

import httpx
import openai
import pytest
from langgraph.errors import NodeTimeoutError
from pydantic import ValidationError

from nodes.models import is_transient
from nodes.offline_model import InjectedFailure
from state.plan import PlanDraft

_REQUEST = httpx.Request("POST", "http://127.0.0.1/v1/chat/completions")


def _status(code: int) -> httpx.Response:
    return httpx.Response(code, request=_REQUEST)


@pytest.mark.parametrize(
    "exc",
    [
        ConnectionRefusedError(),
        InjectedFailure("dropped"),
        TimeoutError(),
        NodeTimeoutError("work", 1.0, kind="run", run_timeout=1.0),
        openai.APIConnectionError(request=_REQUEST),
        openai.APITimeoutError(request=_REQUEST),
        openai.RateLimitError("slow down", response=_status(429), body=None),
        openai.InternalServerError("oops", response=_status(500), body=None),
    ],
)
def test_transient_failures_are_retried(exc: Exception) -> None:
    assert is_transient(exc)


def _validation_error() -> ValidationError:
    try:
        PlanDraft.model_validate({})
    except ValidationError as exc:
        return exc
    raise AssertionError("unreachable")


@pytest.mark.parametrize(
    "exc",
    [
        _validation_error(),
        ValueError("bad answer"),
        RuntimeError("a bug"),
        KeyError("x"),
        openai.BadRequestError("bad request", response=_status(400), body=None),
        openai.AuthenticationError("no key", response=_status(401), body=None),
    ],
)
def test_permanent_failures_are_not_retried(exc: Exception) -> None:
    assert not is_transient(exc)


def test_max_tokens_caps_models_built_from_specs_and_a_role_setting_wins(monkeypatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    from nodes.models import get_model
    from state.context import RunContext
    from state.roles import ModelSettings, Role

    ctx = RunContext(model="openai:small", base_url="http://127.0.0.1:9/v1", max_tokens=1536)
    assert get_model("worker", ctx, agent="qa").max_tokens == 1536  # type: ignore[attr-defined]
    role = Role(name="qa", capabilities=["testing"], prompt="You test.", model_settings=ModelSettings(max_tokens=99))
    assert get_model("worker", ctx, agent="qa", role=role).max_tokens == 99  # type: ignore[attr-defined]
    assert get_model("worker", RunContext(model="openai:small", base_url="http://127.0.0.1:9/v1"),
                     agent="qa").max_tokens is None  # type: ignore[attr-defined]


def test_an_answer_cut_off_at_its_token_cap_is_tried_again() -> None:
    import openai
    from openai.types import CompletionUsage
    from openai.types.chat import ChatCompletion

    from nodes.models import is_transient

    completion = ChatCompletion.model_construct(usage=CompletionUsage(completion_tokens=1536, prompt_tokens=498,
                                                                      total_tokens=2034))
    assert is_transient(openai.LengthFinishReasonError(completion=completion))
    assert not is_transient(ValueError("a bad answer"))
