"""Ask a remote A2A agent (any framework's, any organization's) to do one piece of work, with the a2a-sdk client.

`ask_agent(url, text)` reads the agent's card at `url`, sends `text` as one message, follows the task it starts to
its end (streamed where the agent streams) and returns the text of its artifacts. Anything short of a completed
task is a `RemoteAgentError` with a one-line reason: the agent cannot be reached or answers with an error; the task
failed, was rejected or cancelled; or it asks for input (`input-required`, `auth-required`), which no one on this
side can give — the subtask fails into its pattern's recovery, and the reason says so.

a2a-sdk is an optional dependency (`troupe[a2a]`): it is imported only when an agent is asked.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from state.urls import redact

if TYPE_CHECKING:
    from a2a.types import StreamResponse

MISSING = "A2A needs the optional a2a-sdk: pip install 'troupe[a2a]'"
CONNECT_TIMEOUT = 10.0
"""Seconds to reach the agent."""
READ_TIMEOUT = 300.0
"""Seconds the agent may be silent (no status update, no artifact) before the call gives up."""
_WAITING = ("TASK_STATE_INPUT_REQUIRED", "TASK_STATE_AUTH_REQUIRED")


class RemoteAgentError(RuntimeError):
    """A remote agent did not do the work; the message says why, in one line."""


def a2a_missing() -> str | None:
    """What to install for A2A, when a2a-sdk's client cannot be imported (None: it can)."""
    try:
        import a2a.client  # noqa: F401
    except ImportError:
        return MISSING
    return None


@dataclass
class RemoteAnswer:
    """What a remote agent delivered: its artifacts' text, the task it ran it as, how many updates it streamed."""

    text: str
    task_id: str | None
    state: str
    updates: int


@dataclass
class _Followed:
    """A task as its events told it: the last state and status text, the artifacts' text by id."""

    url: str
    task_id: str | None = None
    state: str = "TASK_STATE_SUBMITTED"
    status: str = ""
    updates: int = 0
    artifacts: dict[str, str] = field(default_factory=dict)
    reply: str | None = None
    """The text of a direct answer (a message, no task)."""

    def take(self, event: StreamResponse) -> None:
        from a2a.helpers import get_artifact_text, get_message_text
        from a2a.types import TaskState

        if event.HasField("message"):
            self.reply, self.state = get_message_text(event.message), "TASK_STATE_COMPLETED"
        elif event.HasField("task"):
            task = event.task
            self.task_id, self.state = task.id, TaskState.Name(task.status.state)
            self.status = get_message_text(task.status.message) if task.status.HasField("message") else ""
            self.artifacts |= {a.artifact_id: get_artifact_text(a) for a in task.artifacts}
        elif event.HasField("status_update"):
            status = event.status_update.status
            self.task_id, self.state = event.status_update.task_id, TaskState.Name(status.state)
            self.status = get_message_text(status.message) if status.HasField("message") else ""
            self.updates += 1
        elif event.HasField("artifact_update"):
            update = event.artifact_update
            text = get_artifact_text(update.artifact)
            before = self.artifacts.get(update.artifact.artifact_id, "") if update.append else ""
            self.artifacts[update.artifact.artifact_id] = before + text

    def answer(self) -> RemoteAnswer:
        """The delivery of a completed task, else the RemoteAgentError that says how it ended."""
        who, task = f"the A2A agent at {redact(self.url)}", f"task {self.task_id}" if self.task_id else "its task"
        said = self.status.strip().splitlines()[0][:300] if self.status.strip() else ""
        if self.state in _WAITING:
            raise RemoteAgentError(f"{who} asks for input ({task}: {said or self.state}); no one here can answer it: "
                                   "let it decide alone (a troupe team: `troupe serve ... --auto-approve`), or "
                                   "give the subtask to another role")
        if self.state != "TASK_STATE_COMPLETED":
            ended = self.state.removeprefix("TASK_STATE_").lower().replace("_", "-")
            raise RemoteAgentError(f"{who} ended {task} {ended}" + (f": {said}" if said else ""))
        text = self.reply if self.reply is not None else "\n\n".join(t for t in self.artifacts.values() if t.strip())
        if not text.strip():
            raise RemoteAgentError(f"{who} completed {task} without an artifact or an answer")
        return RemoteAnswer(text=text, task_id=self.task_id, state=self.state, updates=self.updates)


async def ask_agent(url: str, text: str, *, data: dict[str, Any] | None = None) -> RemoteAnswer:
    """Send `text` (and `data`, as a data part) to the A2A agent at `url` and follow its task to the end; its
    artifacts' text, or a `RemoteAgentError`."""
    try:
        import httpx
        from a2a.client import A2ACardResolver, A2AClientError, ClientConfig, ClientFactory
        from a2a.helpers import new_data_part
        from a2a.types import Message, Part, Role, SendMessageRequest
        from a2a.utils.errors import A2AError
    except ImportError:
        raise RemoteAgentError(MISSING) from None
    who = f"the A2A agent at {redact(url)}"
    followed = _Followed(url)
    parts = [Part(text=text), *([new_data_part(data)] if data is not None else [])]
    message = Message(role=Role.ROLE_USER, message_id=uuid.uuid4().hex, parts=parts)
    try:
        async with httpx.AsyncClient(timeout=httpx.Timeout(CONNECT_TIMEOUT, read=READ_TIMEOUT)) as http:
            card = await A2ACardResolver(http, url).get_agent_card()
            client = ClientFactory(ClientConfig(httpx_client=http)).create(card)
            async for event in client.send_message(SendMessageRequest(message=message)):
                followed.take(event)
    except (A2AClientError, httpx.HTTPError) as exc:  # no answer, no card, a broken stream, a timeout
        raise RemoteAgentError(f"cannot reach {who}: {_line(exc)}") from None
    except A2AError as exc:  # the agent answered with a protocol error
        raise RemoteAgentError(f"{who} refused the subtask: {_line(exc)}") from None
    except ValueError as exc:  # its card offers no transport this client speaks
        raise RemoteAgentError(f"cannot talk to {who}: {_line(exc)}") from None
    return followed.answer()


def _line(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:300] if text else type(exc).__name__
