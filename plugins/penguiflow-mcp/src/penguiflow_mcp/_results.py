"""What a tool's result becomes: inline values for the prompt, references for the rest.

Text and structured content small enough (`max_inline_chars`) stay inline. Everything else
(long text, images, audio, embedded binary resources) is kept in a bounded `ArtifactStore`
and replaced by a reference the model can see without the data: a binary reference never
carries a preview, so no base64 ever reaches a prompt.
"""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from penguiflow.errors import UnknownNameError

__all__ = ["ArtifactStore", "MCPResourceContent", "content_value", "resource_content"]

_PREVIEW_CHARS = 200


@dataclass(frozen=True, slots=True)
class MCPResourceContent:
    """One content of a resource read from a server: text for a text resource, the decoded
    bytes for a binary one, with the MIME type the server gave (or a generic one)."""

    uri: str
    mime_type: str
    content: str | bytes


class ArtifactStore:
    """Results kept out of the prompt, by reference, least recently used evicted first.

    Bounded by `max_items` and `max_bytes` (text counts its UTF-8 size), so a long-running
    connector does not grow without end; an evicted reference answers `UnknownNameError`
    saying so, and a single result larger than `max_bytes` is still kept, alone."""

    def __init__(self, owner: str, *, max_items: int, max_bytes: int) -> None:
        self._owner = owner
        self._max_items = max_items
        self._max_bytes = max_bytes
        self._items: OrderedDict[str, tuple[str, bytes | str, int]] = OrderedDict()
        self._bytes = 0

    def __len__(self) -> int:
        return len(self._items)

    @property
    def size_bytes(self) -> int:
        return self._bytes

    def keep(self, mime_type: str, data: bytes | str, **about: Any) -> dict[str, Any]:
        """Store `data` and return the reference that stands for it."""
        ref = uuid.uuid4().hex
        size = len(data.encode("utf-8")) if isinstance(data, str) else len(data)
        self._items[ref] = (mime_type, data, size)
        self._bytes += size
        while len(self._items) > 1 and (
            len(self._items) > self._max_items or self._bytes > self._max_bytes
        ):
            _, (_, _, evicted) = self._items.popitem(last=False)
            self._bytes -= evicted
        reference: dict[str, Any] = {
            "type": "artifact",
            "ref": f"mcp://{self._owner}/{ref}",
            "mime_type": mime_type,
            "size": len(data),
            **about,
        }
        if isinstance(data, str):
            reference["preview"] = data[:_PREVIEW_CHARS]
        return reference

    def get(self, ref: str) -> tuple[str, bytes | str]:
        key = ref.rsplit("/", 1)[-1]
        try:
            mime_type, data, _ = self._items[key]
        except KeyError:
            raise UnknownNameError(
                f"no artifact {ref!r} on MCP connector {self._owner!r}: it was never kept "
                f"here, or it was evicted (the store keeps at most {self._max_items} "
                f"results and {self._max_bytes} bytes; raise max_artifacts or "
                "max_artifact_bytes to keep more)"
            ) from None
        self._items.move_to_end(key)
        return mime_type, data


def resource_content(contents: Any) -> MCPResourceContent:
    """A resource's text or decoded bytes (`TextResourceContents`/`BlobResourceContents`)."""
    text = getattr(contents, "text", None)
    if isinstance(text, str):
        return MCPResourceContent(str(contents.uri), contents.mime_type or "text/plain", text)
    return MCPResourceContent(
        str(contents.uri),
        contents.mime_type or "application/octet-stream",
        _decode(contents.blob),
    )


def content_value(block: Any, store: ArtifactStore, max_inline_chars: int) -> Any:
    """One content block of a result, as the prompt sees it."""
    kind = getattr(block, "type", None)
    if kind == "text":
        text: str = block.text
        return text if len(text) <= max_inline_chars else store.keep("text/plain", text)
    if kind in ("image", "audio"):
        return store.keep(block.mime_type, _decode(block.data))
    if kind == "resource":
        resource = resource_content(block.resource)
        if isinstance(resource.content, str) and len(resource.content) <= max_inline_chars:
            return resource.content
        return store.keep(resource.mime_type, resource.content, uri=resource.uri)
    if kind == "resource_link":
        # Not fetched here: the model decides whether it needs the resource, and
        # `connector.read_resource(uri)` follows the link.
        link: dict[str, Any] = {"type": "resource_link", "uri": str(block.uri), "name": block.name}
        for key, value in (
            ("mime_type", block.mime_type),
            ("description", block.description),
            ("size", block.size),
        ):
            if value is not None:
                link[key] = value
        return link
    data = block.model_dump_json(by_alias=True)
    return (
        store.keep("application/json", data) if len(data) > max_inline_chars else json.loads(data)
    )


def _decode(data: str) -> bytes:
    try:
        return base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        # A server that sends unpadded or URL-safe base64: decode it leniently rather than
        # hand the model encoded data.
        return base64.urlsafe_b64decode(data + "=" * (-len(data) % 4))
