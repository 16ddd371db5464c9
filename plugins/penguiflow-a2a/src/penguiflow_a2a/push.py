"""Push notifications: URL validation and the sender that posts task updates (public API)."""

from __future__ import annotations

from ._push import (
    NOTIFICATION_TOKEN_HEADER,
    PushAuthentication,
    PushDelivery,
    PushSender,
    PushTarget,
    PushURLError,
    Resolver,
    validate_push_url,
)

__all__ = [
    "NOTIFICATION_TOKEN_HEADER",
    "PushAuthentication",
    "PushDelivery",
    "PushSender",
    "PushTarget",
    "PushURLError",
    "Resolver",
    "validate_push_url",
]
