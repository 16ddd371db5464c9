"""What a tool's result becomes: a `penguiflow.connectors.ToolResult`, whatever it returned.

Text and structured content small enough (`max_inline_chars`) stay inline. Everything else
(long text, images, audio, embedded binary resources) is kept in a bounded `ArtifactStore`
and replaced by a reference the model can see without the data: a binary reference never
carries a preview, so no base64 ever reaches a prompt. `resource_link` blocks become links,
which `MCPConnector.read_resource` follows.
"""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from penguiflow.connectors import ToolContentRef, ToolResourceLink, ToolResult
from penguiflow.errors import UnknownNameError

__all__ = ["ArtifactStore", "MCPResourceContent", "resource_content", "tool_result"]

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

    def keep(
        self,
        mime_type: str,
        data: bytes | str,
        *,
        uri: str | None = None,
        name: str | None = None,
    ) -> ToolContentRef:
        """Store `data` and return the reference that stands for it (with a preview only
        when `data` is text)."""
        ref = uuid.uuid4().hex
        size = len(data.encode("utf-8")) if isinstance(data, str) else len(data)
        self._items[ref] = (mime_type, data, size)
        self._bytes += size
        while len(self._items) > 1 and (
            len(self._items) > self._max_items or self._bytes > self._max_bytes
        ):
            _, (_, _, evicted) = self._items.popitem(last=False)
            self._bytes -= evicted
        return ToolContentRef(
            ref=f"mcp://{self._owner}/{ref}",
            mime_type=mime_type,
            size=size,
            uri=uri,
            name=name,
            preview=data[:_PREVIEW_CHARS] if isinstance(data, str) else None,
        )

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


def tool_result(result: Any, store: ArtifactStore, max_inline_chars: int) -> ToolResult:
    """A successful `CallToolResult` as a `ToolResult` (the caller raises for `is_error`)."""
    structured = result.structured_content
    texts: list[str] = []
    references: list[ToolContentRef] = []
    links: list[ToolResourceLink] = []
    if structured is not None:
        data = json.dumps(structured, ensure_ascii=False, default=str)
        if len(data) > max_inline_chars:
            references.append(store.keep("application/json", data))
            structured = None
    for block in result.content:
        kind = getattr(block, "type", None)
        if kind == "text":
            text: str = block.text
            if result.structured_content is not None and _repeats(text, result.structured_content):
                # The spec asks servers to send structured content as text too, for older
                # clients; shown twice, it would only double the prompt.
                continue
            if len(text) <= max_inline_chars:
                texts.append(text)
            else:
                references.append(store.keep("text/plain", text))
        elif kind in ("image", "audio"):
            references.append(store.keep(block.mime_type, _decode(block.data)))
        elif kind == "resource":
            resource = resource_content(block.resource)
            if isinstance(resource.content, str) and len(resource.content) <= max_inline_chars:
                texts.append(resource.content)
            else:
                references.append(
                    store.keep(resource.mime_type, resource.content, uri=resource.uri)
                )
        elif kind == "resource_link":
            # Not fetched here: the model decides whether it needs the resource, and
            # `connector.read_resource(uri)` follows the link.
            links.append(
                ToolResourceLink(
                    uri=str(block.uri),
                    name=block.name,
                    mime_type=block.mime_type,
                    description=block.description,
                    size=block.size,
                )
            )
        else:
            # A block type newer than this code: its JSON, inline or by reference.
            data = block.model_dump_json(by_alias=True)
            if len(data) <= max_inline_chars:
                texts.append(data)
            else:
                references.append(store.keep("application/json", data))
    return ToolResult(
        text="\n\n".join(texts),
        structured=structured,
        references=tuple(references),
        links=tuple(links),
    )


def _repeats(text: str, structured: Any) -> bool:
    """Whether a text block is only the structured content serialized as JSON."""
    try:
        return bool(json.loads(text) == structured)
    except ValueError:
        return False


def _decode(data: str) -> bytes:
    try:
        return base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        # A server that sends unpadded or URL-safe base64: decode it leniently rather than
        # hand the model encoded data.
        return base64.urlsafe_b64decode(data + "=" * (-len(data) % 4))
