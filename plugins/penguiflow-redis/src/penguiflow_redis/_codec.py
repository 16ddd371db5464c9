"""Items crossing processes: Pydantic models by registered type, plain JSON values as they are.

An item is encoded as `{"t": tag, "v": data}`: `tag` is `module:QualName` for a registered
model, `json` for a plain JSON value, `message` for a `Message` (its payload encoded in `p`),
`flow_error` for a `FlowError`. Only registered types are rebuilt on the other side, so a
stream entry can never make a worker import or construct an arbitrary class.
"""

from __future__ import annotations

import inspect
import json
import types
import typing
from collections.abc import Callable, Iterable
from typing import Any

from pydantic import BaseModel
from pydantic_core import PydanticSerializationError

from penguiflow.errors import FlowError, PenguiFlowError
from penguiflow.types import WM, FinalAnswer, Message, PlanStep, StreamChunk, Thought

__all__ = ["PayloadCodec", "PayloadTypeError", "annotated_models", "type_tag"]

_BUILTIN_MODELS: tuple[type[BaseModel], ...] = (WM, FinalAnswer, StreamChunk, PlanStep, Thought)
_PLAIN = (str, int, float, bool, type(None))


class PayloadTypeError(PenguiFlowError, TypeError):
    """An item that cannot cross processes: unregistered model type, or not JSON at all."""


def type_tag(model: type[BaseModel]) -> str:
    return f"{model.__module__}:{model.__qualname__}"


def annotated_models(func: Callable[..., Any]) -> list[type[BaseModel]]:
    """Pydantic models named in a node function's first parameter and return annotations."""
    try:
        hints = typing.get_type_hints(func)
    except Exception:  # unresolvable forward references: nothing to learn from them
        return []
    parameters = list(inspect.signature(func).parameters)
    wanted = [hints[name] for name in (*parameters[:1], "return") if name in hints]
    found: list[type[BaseModel]] = []
    stack = list(wanted)
    while stack:
        hint = stack.pop()
        if isinstance(hint, type) and issubclass(hint, BaseModel):
            if hint is not Message and hint not in found:
                found.append(hint)
            continue
        origin = typing.get_origin(hint)
        if origin is not None or isinstance(hint, types.UnionType):
            stack.extend(typing.get_args(hint))
    return found


class PayloadCodec:
    """Encodes items to JSON text and rebuilds them; knows which model types it may rebuild."""

    def __init__(self, models: Iterable[type[BaseModel]] = ()) -> None:
        self._models: dict[str, type[BaseModel]] = {}
        self.register(*_BUILTIN_MODELS, *models)

    def register(self, *models: type[BaseModel]) -> None:
        for model in models:
            if not (isinstance(model, type) and issubclass(model, BaseModel)):
                raise PayloadTypeError(
                    f"payload type {model!r} is not a Pydantic model; only BaseModel subclasses "
                    "can be registered (plain JSON values need no registration)"
                )
            self._models[type_tag(model)] = model

    @property
    def tags(self) -> list[str]:
        return sorted(self._models)

    # -- encoding ------------------------------------------------------------------------------

    def dumps(self, item: Any) -> str:
        return json.dumps(self.encode(item), separators=(",", ":"))

    def encode(self, item: Any) -> dict[str, Any]:
        if isinstance(item, Message):
            payload = self._value(item.payload, "Message.payload")
            try:
                envelope = item.model_dump(mode="json", exclude={"payload"})
            except PydanticSerializationError as exc:
                raise PayloadTypeError(
                    f"Message headers or meta of trace {item.trace_id} are not JSON-serialisable "
                    f"({exc}); keep meta to str, numbers, bools, lists and dicts"
                ) from None
            return {"t": "message", "v": envelope, "p": payload}
        if isinstance(item, FlowError):
            return {"t": "flow_error", "v": item.to_payload()}
        return self._value(item, "payload")

    def _value(self, value: Any, where: str) -> dict[str, Any]:
        if isinstance(value, _PLAIN):
            return {"t": "json", "v": value}
        if isinstance(value, BaseModel):
            model = type(value)
            tag = type_tag(model)
            if self._models.get(tag) is not model:
                raise PayloadTypeError(
                    f"{where} has type {tag}, which is not registered with the redis runtime, so "
                    f"a worker could not rebuild it; annotate a node with it "
                    f"(`async def node(message: {model.__name__}, ctx)`) or declare "
                    f"it with create(..., payload_types=[{model.__name__}])"
                )
            try:
                return {"t": tag, "v": value.model_dump(mode="json")}
            except PydanticSerializationError as exc:
                raise PayloadTypeError(
                    f"{where} of type {tag} cannot be serialised to JSON: {exc}"
                ) from None
        if isinstance(value, list) and any(isinstance(v, BaseModel) for v in value):
            # e.g. what join_k emits: one payload per joined message
            return {
                "t": "list",
                "v": [self._value(v, f"{where}[{i}]") for i, v in enumerate(value)],
            }
        if isinstance(value, list | dict):
            try:
                json.dumps(value)
            except (TypeError, ValueError) as exc:
                raise PayloadTypeError(
                    f"{where} is a {type(value).__name__} that is not plain JSON ({exc}); put "
                    "the values in a Pydantic model declared with create(..., payload_types=[...])"
                ) from None
            return {"t": "json", "v": value}
        raise PayloadTypeError(
            f"{where} of type {type(value).__qualname__} cannot cross processes; send a "
            "registered Pydantic model or a plain JSON value (str, number, bool, None, list, dict)"
        )

    # -- decoding ------------------------------------------------------------------------------

    def loads(self, text: str | bytes) -> Any:
        return self.decode(json.loads(text))

    def decode(self, data: dict[str, Any]) -> Any:
        tag = data["t"]
        if tag == "message":
            fields = dict(data["v"])
            fields["payload"] = self._rebuild(data["p"])
            return Message.model_validate(fields)
        if tag == "flow_error":
            return _flow_error(data["v"])
        return self._rebuild(data)

    def _rebuild(self, data: dict[str, Any]) -> Any:
        tag = data["t"]
        if tag == "json":
            return data["v"]
        if tag == "list":
            return [self._rebuild(item) for item in data["v"]]
        model = self._models.get(tag)
        if model is None:
            raise PayloadTypeError(
                f"received a payload of type {tag}, which this process has not registered; "
                "build workers and clients from the same code, which declares it in "
                "create(..., payload_types=[...])"
            )
        return model.model_validate(data["v"])


def _flow_error(payload: dict[str, Any]) -> FlowError:
    error = FlowError(
        trace_id=payload.get("trace_id"),
        node_name=payload.get("node_name"),
        node_id=payload.get("node_id"),
        code=payload["code"],
        message=payload["message"],
        metadata=payload.get("metadata"),
    )
    if payload.get("exception_type") is not None:
        error.exception_type = payload["exception_type"]
    return error
