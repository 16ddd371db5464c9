"""`ModelRegistry`: the input and output models of each node, used for validation."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, TypeAdapter

from .errors import ConfigurationError, InvalidTypeError, UnknownNameError

__all__ = ["ModelRegistry"]


class ModelRegistry:
    """Maps node names to their (input, output) Pydantic models and cached TypeAdapters."""

    def __init__(self) -> None:
        self._models: dict[str, tuple[type[BaseModel], type[BaseModel]]] = {}
        self._adapters: dict[str, tuple[TypeAdapter[Any], TypeAdapter[Any]]] = {}

    def register(
        self, node_name: str, in_model: type[BaseModel], out_model: type[BaseModel]
    ) -> None:
        if node_name in self._models:
            raise ConfigurationError(f"Node '{node_name}' already registered")
        for model in (in_model, out_model):
            if not (isinstance(model, type) and issubclass(model, BaseModel)):
                raise InvalidTypeError("Models must inherit from pydantic.BaseModel")
        self._models[node_name] = (in_model, out_model)
        self._adapters[node_name] = (TypeAdapter(in_model), TypeAdapter(out_model))

    def has(self, node_name: str) -> bool:
        return node_name in self._models

    def adapters(self, node_name: str) -> tuple[TypeAdapter[Any], TypeAdapter[Any]]:
        try:
            return self._adapters[node_name]
        except KeyError:
            raise UnknownNameError(f"Node '{node_name}' not registered") from None

    def models(self, node_name: str) -> tuple[type[BaseModel], type[BaseModel]]:
        try:
            return self._models[node_name]
        except KeyError:
            raise UnknownNameError(f"Node '{node_name}' not registered") from None
