"""Which steering events need a person's confirmation before a session acts on them."""

from __future__ import annotations

from dataclasses import dataclass, field

from .steering import SteeringEvent, SteeringEventType

__all__ = ["ControlPolicy"]


def _destructive() -> set[SteeringEventType]:
    return {SteeringEventType.CANCEL, SteeringEventType.REDIRECT}


@dataclass(slots=True)
class ControlPolicy:
    """The agent proposes, the user decides: a destructive event (by default CANCEL and
    REDIRECT) sent by anything other than the user is held until confirmed, either by an
    APPROVE from the user or by `"confirmed": true` in its payload (which the session sets
    on events it sends itself, such as a cascading cancel)."""

    require_confirmation: bool = True
    destructive_events: set[SteeringEventType] = field(default_factory=_destructive)

    def requires_confirmation(self, event: SteeringEvent) -> bool:
        """Whether `event` must wait for confirmation before it takes effect."""
        if not self.require_confirmation or event.event_type not in self.destructive_events:
            return False
        return event.source != "user" and event.payload.get("confirmed") is not True
