"""Who a paused run belongs to: a pause token alone does not resume it.

A paused run is bound to its owner: the `owner=` given to `run()`, or else the run's memory
key (tenant, user and session), or else nobody. `resume()` must name the same owner (the
same string, or an equal `MemoryKey`); anyone else is refused with `OwnerMismatchError` and
the token stays usable by its owner. The saved state keeps a SHA-256 digest of the owner, not
the owner itself, and the refusal never shows what the run's owner is.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any, Literal, TypeAlias

from penguiflow.errors import ConfigurationError, InvalidTypeError, PenguiFlowError
from penguiflow.memory import MemoryKey

__all__ = ["Owner", "OwnerMismatchError", "bind_owner", "check_owner", "saved_binding"]

#: an explicit owner (any string the caller uses for who may resume: a user id, a tenant and
#: a user, a session) or a memory key
Owner: TypeAlias = str | MemoryKey
OwnerKind = Literal["owner", "memory_key"]

_KINDS: dict[str, str] = {
    "owner": "the owner= given to run()",
    "memory_key": "the tenant, user and session of its memory_key",
}


class OwnerMismatchError(PenguiFlowError, PermissionError):
    """`resume()` named an owner other than the paused run's (or none, or one for a run that
    has none). The token is not used up: its owner can still resume it."""


def _identity(owner: Owner) -> tuple[OwnerKind, str]:
    """The owner's kind and digest. The kind is hashed in, so an explicit owner string that
    happens to equal a memory key's storage string is still another owner."""
    if isinstance(owner, MemoryKey):
        kind: OwnerKind = "memory_key"
        material = owner.as_string()
    elif isinstance(owner, str):
        if not owner:
            raise ConfigurationError(
                "owner= must be a non-empty string or a MemoryKey; pass None for no owner"
            )
        kind, material = "owner", owner
    else:
        raise InvalidTypeError(f"owner= must be a str or a MemoryKey, got {type(owner).__name__}")
    data = f"{kind}\0{material}".encode("utf-8", "surrogatepass")
    return kind, hashlib.sha256(data).hexdigest()


def bind_owner(owner: Owner | None, memory_key: MemoryKey | None) -> dict[str, str] | None:
    """What a paused run saves about its owner: the kind and a digest; None for no owner."""
    chosen = owner if owner is not None else memory_key
    if chosen is None:
        return None
    kind, digest = _identity(chosen)
    return {"kind": kind, "digest": digest}


def saved_binding(state: dict[str, Any]) -> dict[str, str] | None:
    """The owner binding of a saved paused run. A state without an `owner` entry is bound to
    its memory key, as a new run without `owner=` would be."""
    if "owner" in state:
        binding = state["owner"]
        return dict(binding) if binding else None
    key = state.get("memory_key")
    return bind_owner(None, MemoryKey.model_validate(key)) if key else None


def check_owner(state: dict[str, Any], owner: Owner | None, ref: str) -> None:
    """Refuse (`OwnerMismatchError`) a resume of the paused run `state` by `owner`, unless
    it is the run's owner. `ref` names the pause (never the token)."""
    expected = saved_binding(state)
    given = _identity(owner)[1] if owner is not None else None
    if expected is None:
        if given is None:
            return
        raise OwnerMismatchError(
            f"resume of {ref} refused: the paused run has no owner (run() had neither owner= "
            "nor memory_key=), and resume() named one; call resume() without owner="
        )
    # Constant time: how much of a digest matched must not show through the timing.
    if given is not None and hmac.compare_digest(expected["digest"], given):
        return
    bound_to = _KINDS.get(expected.get("kind", ""), "its owner")
    if given is None:
        raise OwnerMismatchError(
            f"resume of {ref} refused: the paused run is bound to {bound_to}, and resume() "
            "named no owner; pass the same owner= to resume()"
        )
    raise OwnerMismatchError(
        f"resume of {ref} refused: the owner given to resume() does not match the paused "
        f"run's owner ({bound_to}); only that owner can resume it"
    )
