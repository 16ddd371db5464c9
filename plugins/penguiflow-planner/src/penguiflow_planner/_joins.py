"""Which join strategy combines a parallel plan: the one the action names, else the planner's.

A plan whose `join` is a string names a join strategy (ours); a plan with no join uses the
planner's `join_strategy`, and with none set (the default) gets PenguiFlow's observation of
every branch without any join.

Join strategies are drivers (`penguiflow.join_strategies`); the installed ones are built once
per planner, on first use (the prompt lists them all), never per run or step, and a broken
one is left out rather than fatal.
"""

from __future__ import annotations

from penguiflow.joins import JoinStrategy, get_join_strategy, join_strategies

from ._actions import PlannerAction
from ._parsing import ActionError

__all__ = ["JoinChooser"]


class JoinChooser:
    """The join strategies a planner offers: `default` (a name or a strategy object) and,
    when it is a name, every installed one."""

    def __init__(self, default: str | JoinStrategy | None) -> None:
        self.default = default
        self._installed: dict[str, JoinStrategy] | None = None

    def installed(self) -> dict[str, JoinStrategy]:
        if self._installed is None:
            self._installed = join_strategies()
        return self._installed

    def names(self) -> list[str]:
        """What the prompt offers the model."""
        if self.default is not None and not isinstance(self.default, str):
            return [self.default.name]
        return sorted(self.installed())

    def get(self, name: str | None) -> JoinStrategy | None:
        """The strategy called `name`, or the default (None: no join strategy);
        `DriverNotFoundError` (naming the installed ones) for a name nobody installed."""
        chosen = name or self.default
        if chosen is None or not isinstance(chosen, str):
            return chosen
        found = self.installed().get(chosen)
        # Unknown (or left out because broken): the driver lookup says why, and what exists.
        return found if found is not None else get_join_strategy(chosen)

    def named_in(self, action: PlannerAction) -> JoinStrategy | None:
        """The strategy a plan names (by a string `join`), None when it names none;
        `ActionError` for a name nobody installed: the model's mistake, told the installed
        ones."""
        join = action.parallel_join()
        if not isinstance(join, str):
            return None
        from penguiflow.plugins import DriverNotFoundError

        try:
            return self.get(join)
        except DriverNotFoundError:
            installed = ", ".join(self.names()) or "none"
            raise ActionError(
                [f"join: no join strategy {join!r}; use one of: {installed}"]
            ) from None
