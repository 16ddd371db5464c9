"""Shaping a tool's result for the trajectory and for the model (PenguiFlow 3.11 behaviour).

Three things happen to every result, in this order:

1. It becomes JSON (`ShapedObservation.stored`: the full result, kept in the trajectory).
2. Fields of the tool's output model marked `Field(json_schema_extra={"artifact": True})`
   (charts, files, long blobs meant for the caller, not for the model) are collected
   (`ShapedObservation.artifacts`, which the loop merges into `trajectory.artifacts[tool]` and
   the final payload's `artifacts`) and replaced in the model's view by a placeholder such as
   `<artifact:str size=48213>`, in nested models too.
3. When the model's view is still over `max_observation_chars`, it is clamped: stored whole as
   an artifact (when an artifact store is given and the view is at least
   `auto_artifact_threshold` characters; the model sees the reference, a summary and a
   preview), else truncated: strings over `max_field_chars` and lists over 20 items are cut
   with a note (`truncation_suffix`), then the longest strings down to `preview_length`, and
   as a last resort the JSON text itself, so the view always ends within the limit.
   Events: `artifact_stored`, `observation_clamped` (PenguiFlow's names and fields).

Unlike PenguiFlow, the artifact fields are replaced before the size is measured (a chart no
longer pushes a small result over the limit), and the trajectory keeps the full result, not the
clamped one: the clamp is only for the prompt.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, get_args, get_origin

from pydantic import BaseModel

from penguiflow.errors import describe_exception

from ._events import EmitFn
from ._tool_config import ObservationGuardrailConfig

__all__ = [
    "ShapedObservation",
    "artifact_placeholder",
    "merge_artifacts",
    "shape_observation",
]

logger = logging.getLogger("penguiflow.planner")

#: items of a list kept when a result is truncated (PenguiFlow's)
_LIST_ITEMS: Final = 20
_PREVIEW_ELLIPSIS: Final = "..."


@dataclass
class ShapedObservation:
    """A tool's result, ready for the trajectory step.

    `stored` is `TrajectoryStep.observation` (the full result as JSON); `for_llm` is
    `TrajectoryStep.llm_observation` (what the model is shown; PenguiFlow records it on every
    successful tool step, even when it equals `stored`);
    `artifacts` the artifact-marked fields of the result, by field name."""

    stored: Any
    for_llm: Any | None
    artifacts: dict[str, Any] = field(default_factory=dict)


def _to_json(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    try:
        return json.loads(json.dumps(value, ensure_ascii=False, default=str))
    except (TypeError, ValueError):  # NaN-free but still odd (a circular structure)
        return str(value)


def _size(value: Any) -> int:
    return len(json.dumps(value, ensure_ascii=False))


# -- artifact-marked fields --------------------------------------------------------------------


def _is_artifact(info: Any) -> bool:
    extra = getattr(info, "json_schema_extra", None)
    return isinstance(extra, Mapping) and bool(extra.get("artifact"))


def _nested_model(annotation: Any) -> tuple[type[BaseModel] | None, bool]:
    """The model inside a field's type (`Model`, `Model | None`, `list[Model]`,
    `dict[str, Model]`), and whether it is the values of a mapping."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation, False
    origin = get_origin(annotation)
    if origin is None:
        return None, False
    arguments = get_args(annotation)
    is_mapping = isinstance(origin, type) and issubclass(origin, Mapping)
    if is_mapping:
        arguments = arguments[1:]
    for argument in arguments:
        model, inner_mapping = _nested_model(argument)
        if model is not None:
            return model, is_mapping or inner_mapping
    return None, False


def artifact_placeholder(value: Any) -> str:
    """What the model sees of an artifact field: its JSON type and size
    (`<artifact:str size=48213>`, `<artifact:list size=3>`), as in PenguiFlow."""
    kind = type(value).__name__
    if isinstance(value, str | list | dict):
        return f"<artifact:{kind} size={len(value)}>"
    return f"<artifact:{kind}>"


def _redact(model: type[BaseModel], value: Any) -> Any:
    """`value` (JSON of `model`) with its artifact fields, at any depth, as placeholders."""
    if not isinstance(value, Mapping):
        return value
    fields = model.model_fields
    view: dict[str, Any] = {}
    for name, item in value.items():
        info = fields.get(name)
        if info is None:
            view[name] = item
            continue
        if _is_artifact(info):
            view[name] = artifact_placeholder(item)
            continue
        nested, of_mapping = _nested_model(info.annotation)
        if nested is None:
            view[name] = item
        elif isinstance(item, Mapping) and of_mapping:
            view[name] = {key: _redact(nested, inner) for key, inner in item.items()}
        elif isinstance(item, Mapping):
            view[name] = _redact(nested, item)
        elif isinstance(item, list):
            view[name] = [_redact(nested, inner) for inner in item]
        else:
            view[name] = item
    return view


def _collect(model: type[BaseModel], value: Any) -> dict[str, Any]:
    """The artifact-marked top-level fields of `value`, by name (PenguiFlow collects the top
    level; nested ones are only hidden from the model)."""
    if not isinstance(value, Mapping):
        return {}
    return {
        name: value[name]
        for name, info in model.model_fields.items()
        if _is_artifact(info) and name in value
    }


def merge_artifacts(artifacts: dict[str, Any], tool_name: str, found: Mapping[str, Any]) -> None:
    """Add a result's artifact fields to `trajectory.artifacts` (by tool, then by field; a
    later call of the same tool replaces the fields it sets again)."""
    if found:
        merged = dict(artifacts.get(tool_name) or {})
        merged.update(found)
        artifacts[tool_name] = merged


# -- clamping ----------------------------------------------------------------------------------


def _suffix(config: ObservationGuardrailConfig, cut: int) -> str:
    try:
        return config.truncation_suffix.format(truncated_chars=cut)
    except (KeyError, IndexError, ValueError):  # a template with other fields: as it is
        return config.truncation_suffix


def _clip_fields(value: Any, config: ObservationGuardrailConfig) -> Any:
    """Strings over `max_field_chars` and lists over 20 items cut, at any depth."""
    if isinstance(value, str) and len(value) > config.max_field_chars:
        cut = len(value) - config.max_field_chars
        return value[: config.max_field_chars] + _suffix(config, cut)
    if isinstance(value, Mapping):
        return {key: _clip_fields(item, config) for key, item in value.items()}
    if isinstance(value, list):
        kept = [_clip_fields(item, config) for item in value[:_LIST_ITEMS]]
        if len(value) > _LIST_ITEMS:
            kept.append(f"... [{len(value) - _LIST_ITEMS} more items]")
        return kept
    return value


def _strings(value: Any, found: list[tuple[int, Any, Any]]) -> None:
    """Every string inside containers: (its length, its container, its key or index)."""
    items: Sequence[tuple[Any, Any]]
    if isinstance(value, dict):
        items = list(value.items())
    elif isinstance(value, list):
        items = list(enumerate(value))
    else:
        return
    for key, item in items:
        if isinstance(item, str):
            found.append((len(item), value, key))
        else:
            _strings(item, found)


def _shrink_strings(view: Any, config: ObservationGuardrailConfig, limit: int) -> tuple[Any, int]:
    """Cut the longest strings to `preview_length` until `view` fits `limit`; return it and
    its size."""
    size = _size(view)
    found: list[tuple[int, Any, Any]] = []
    _strings(view, found)
    found.sort(key=lambda entry: entry[0], reverse=True)
    keep = config.preview_length
    for length, container, key in found:
        if size <= limit:
            break
        if length <= keep + 100:  # cutting it would save next to nothing
            break
        old = container[key]
        new = old[:keep] + _suffix(config, length - keep)
        container[key] = new
        size += _size(new) - _size(old)
    return view, size


def _flat(serialised: str, config: ObservationGuardrailConfig) -> dict[str, Any]:
    """The JSON text itself, cut to fit (PenguiFlow's form when structure is not kept)."""
    limit = config.max_observation_chars
    note = _suffix(config, len(serialised))
    # the wrapper and the escaping of the kept text cost characters too: leave room for both
    room = max(0, limit - len(note) - 80)
    kept = serialised[:room]
    while kept and _size({"truncated_observation": kept, "truncation_note": note}) > limit:
        kept = kept[: max(0, len(kept) - max(64, (len(kept) // 8)))]
    note = _suffix(config, len(serialised) - len(kept))
    return {"truncated_observation": kept, "truncation_note": note}


def _truncate(view: Any, serialised: str, config: ObservationGuardrailConfig) -> Any:
    limit = config.max_observation_chars
    if config.preserve_structure and isinstance(view, dict | list | str):
        shaped = _clip_fields(view, config)
        shaped, size = _shrink_strings(shaped, config, limit)
        if size <= limit:
            return shaped
    return _flat(serialised, config)


def _ref_json(ref: Any) -> dict[str, Any]:
    if isinstance(ref, BaseModel):
        return ref.model_dump(mode="json")
    if isinstance(ref, Mapping):
        return dict(_to_json(dict(ref)))
    if dataclasses.is_dataclass(ref) and not isinstance(ref, type):
        return dict(_to_json(dataclasses.asdict(ref)))
    return {"id": str(getattr(ref, "id", ref))}


async def _store(
    stored: Any,
    view_text: str,
    *,
    tool_name: str,
    config: ObservationGuardrailConfig,
    artifact_store: Any,
    scope: Any | None,
    emit: EmitFn,
) -> dict[str, Any] | None:
    """Store the full result as an artifact; the model's view of it, or None when the store
    failed (logged) or kept nothing (its reference says `truncated`): the result is then
    truncated instead."""
    text = json.dumps(stored, ensure_ascii=False)
    namespace = f"observation.{tool_name}"
    options: dict[str, Any] = {"mime_type": "application/json", "namespace": namespace}
    if scope is not None:
        options["scope"] = scope
    try:
        ref = _ref_json(await artifact_store.put_text(text, **options))
    except Exception as exc:
        logger.warning(
            "storing the result of %s as an artifact failed (%s); truncating it instead",
            tool_name,
            describe_exception(exc),
        )
        return None
    source = ref.get("source")
    if isinstance(source, Mapping) and source.get("truncated"):
        # a store that keeps nothing (PenguiFlow's `NoOpArtifactStore`, the default): a
        # reference to nothing and a short preview would show the model less than truncation
        logger.debug("the artifact store kept nothing of %s's result; truncating", tool_name)
        return None
    await emit(
        "artifact_stored",
        {
            "artifact_id": ref.get("id"),
            "mime_type": ref.get("mime_type", "application/json"),
            "size_bytes": ref.get("size_bytes") or len(text.encode("utf-8")),
            "artifact_filename": ref.get("filename"),
            "source": {"namespace": namespace},
        },
        node_name=tool_name,
    )
    preview = view_text[: config.preview_length]
    if len(view_text) > config.preview_length:
        preview += _PREVIEW_ELLIPSIS
    return {
        "artifact": ref,
        "summary": (
            f"The result of {tool_name} ({len(view_text)} characters) is too large to show; "
            f"it was stored as artifact {ref.get('id')}. The preview is its beginning."
        ),
        "preview": preview,
    }


async def shape_observation(
    result: Any,
    *,
    tool_name: str,
    out_model: type[BaseModel] | None,
    config: ObservationGuardrailConfig,
    artifact_store: Any | None,
    emit: EmitFn,
    scope: Any | None = None,
) -> ShapedObservation:
    """Shape one tool result (see this module's docstring).

    `artifact_store` follows PenguiFlow's `ArtifactStore` protocol (only `put_text(text, *,
    mime_type, namespace, scope)` is used; `scope`, when given, is passed on). Emits
    `artifact_stored` and `observation_clamped` (`original_size`, `clamped_size`, `method`:
    `artifact` or `truncate`, `reduction_pct`) with the tool as `node_name`."""
    stored = _to_json(result)
    artifacts: dict[str, Any] = {}
    view = stored
    if out_model is not None:
        artifacts = _collect(out_model, stored)
        view = _redact(out_model, stored)
    view_text = json.dumps(view, ensure_ascii=False)
    original = len(view_text)
    if original > config.max_observation_chars:
        clamped: Any = None
        method = "truncate"
        threshold = config.auto_artifact_threshold
        if artifact_store is not None and threshold > 0 and original >= threshold:
            clamped = await _store(
                stored,
                view_text,
                tool_name=tool_name,
                config=config,
                artifact_store=artifact_store,
                scope=scope,
                emit=emit,
            )
            method = "artifact"
        if clamped is None:
            clamped, method = _truncate(view, view_text, config), "truncate"
        size = _size(clamped)
        await emit(
            "observation_clamped",
            {
                "original_size": original,
                "clamped_size": size,
                "method": method,
                "reduction_pct": round((1 - size / original) * 100, 1),
            },
            node_name=tool_name,
        )
        view = clamped
    return ShapedObservation(stored=stored, for_llm=view, artifacts=artifacts)
