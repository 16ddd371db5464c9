"""Reflection: a reviewer (the planner's model, or a critic) approves or rejects each answer."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from penguiflow.errors import describe_exception
from penguiflow.llm import JSONLLMClient, LLMMessage

from ._failures import is_failure

__all__ = ["Critique", "ReflectionConfig", "review"]

logger = logging.getLogger("penguiflow.planner")


class Critique(BaseModel):
    """What the reviewer says about an answer."""

    approve: bool
    feedback: str = ""


@dataclass(frozen=True, slots=True)
class ReflectionConfig:
    """Ask a reviewer (the planner's model, or `critic`) about each answer; a rejected answer
    goes back for another round, at most `max_rounds` times."""

    max_rounds: int = 1
    critic: JSONLLMClient | None = None
    instructions: str = (
        "You review answers. Approve an answer that fully and correctly answers the task; "
        "otherwise say what is missing."
    )


async def review(
    config: ReflectionConfig, llm: JSONLLMClient, query: str, answer: Any
) -> Critique | None:
    """The reviewer's critique of `answer`, or None when the reviewer failed (logged): a
    failing reviewer is skipped, whatever it raised, and never ends the run."""
    critic = config.critic or llm
    messages = [
        LLMMessage(role="system", content=config.instructions),
        LLMMessage(
            role="user",
            content=f"Task: {query}\nAnswer: {answer}\nReply with JSON "
            '{"approve": true|false, "feedback": "..."}',
        ),
    ]
    try:
        reply = await critic.complete(messages=messages, response_format=Critique)
        return Critique.model_validate_json(reply.text)
    except BaseException as exc:
        if not is_failure(exc):
            raise
        logger.warning("reflection skipped: the reviewer failed (%s)", describe_exception(exc))
        return None
