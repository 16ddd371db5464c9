"""The JSON action contract between the planner and the model (PenguiFlow 3.11's shape).

Every reply the model gives is one action: `{"next_node": <name>, "args": {...}}`. The name is
a tool of the catalog, or one of the reserved opcodes:

- `final_response`: the answer is in `args.answer` (older replies say `args.raw_answer`; both
  keys are kept, as PenguiFlow does);
- `parallel`: `args.steps` lists tool calls to run at once, and `args.join` combines their
  results, either with a join tool (`{"node", "args", "inject"}`, PenguiFlow's) or with a join
  strategy named by a string (`"append"`, ours).

Our earlier dialect (`next_node: null` for a finish, `plan` + `join` at the top level) is read
by the parser and normalised to this shape, so the rest of the planner sees one form.
"""

from __future__ import annotations

from typing import Any, NotRequired, TypedDict

from pydantic import BaseModel, ConfigDict, Field
from pydantic.json_schema import SkipJsonSchema

__all__ = [
    "FINAL_RESPONSE",
    "PARALLEL",
    "SPECIAL_NODES",
    "FinalResponseArgs",
    "JoinInjection",
    "ParallelCall",
    "ParallelJoin",
    "PlanArgs",
    "PlanJoin",
    "PlanStep",
    "PlannerAction",
]

FINAL_RESPONSE = "final_response"
PARALLEL = "parallel"
#: Names the model may give as `next_node` that are not tools.
SPECIAL_NODES = frozenset({FINAL_RESPONSE, PARALLEL})


class JoinInjection(BaseModel):
    """How a join tool receives the branches' results: each key of `mapping` is an argument
    of the join tool, each value a source (`$results`, `$branches`, `$failures`,
    `$success_count`, `$failure_count`, `$expect`)."""

    mapping: dict[str, str] = Field(default_factory=dict)


class ParallelCall(BaseModel):
    """One branch of a parallel plan."""

    node: str
    args: dict[str, Any] = Field(default_factory=dict)


class ParallelJoin(BaseModel):
    """The tool that combines a parallel plan's results."""

    node: str
    args: dict[str, Any] = Field(default_factory=dict)
    inject: JoinInjection | None = None


class PlannerAction(BaseModel):
    """One decision of the model: call `next_node` with `args`, run a parallel plan, or finish.

    `thought`, `raw_llm_response` and `alternate_actions` are the planner's own notes (what the
    model said it was thinking, its reply as received, other actions found in the same reply);
    they are kept out of the JSON schema the model is asked to follow."""

    model_config = ConfigDict(extra="ignore")

    next_node: str
    args: dict[str, Any] = Field(default_factory=dict)
    thought: SkipJsonSchema[str] = ""
    raw_llm_response: SkipJsonSchema[str | None] = Field(default=None, exclude=True)
    alternate_actions: SkipJsonSchema[list[dict[str, Any]] | None] = Field(
        default=None, exclude=True
    )

    @property
    def is_finish(self) -> bool:
        return self.next_node == FINAL_RESPONSE

    @property
    def is_parallel(self) -> bool:
        return self.next_node == PARALLEL

    @property
    def answer(self) -> Any:
        """The final answer of a `final_response` (`args.answer`, else `args.raw_answer`)."""
        if "answer" in self.args:
            return self.args["answer"]
        return self.args.get("raw_answer")

    def parallel_steps(self) -> list[ParallelCall]:
        """The branches of a `parallel` action (validated; empty for any other action)."""
        if not self.is_parallel:
            return []
        return [ParallelCall.model_validate(step) for step in self.args.get("steps") or ()]

    def parallel_join(self) -> ParallelJoin | str | None:
        """How a `parallel` action's results are combined: a join tool, a join strategy's
        name, or None (the planner's default strategy)."""
        join = self.args.get("join") if self.is_parallel else None
        if join is None or isinstance(join, str):
            return join
        return ParallelJoin.model_validate(join)

    def legacy_dump(self) -> dict[str, Any]:
        """The action in the on-disk form PenguiFlow's trajectories use (`thought`,
        `next_node`, `args`, `plan`, `join`): a finish has `next_node` null, a parallel plan
        its steps under `plan`. `Trajectory.from_serialised` reads both forms."""
        thought = self.thought or "planning next step"
        if self.is_finish:
            args = dict(self.args)
            if "answer" in args or "raw_answer" in args:
                answer = self.answer
                args.setdefault("answer", answer)
                args.setdefault("raw_answer", answer)
            return {"thought": thought, "next_node": None, "args": args, "plan": None,
                    "join": None}  # fmt: skip
        if self.is_parallel:
            join = self.args.get("join")
            return {
                "thought": thought,
                "next_node": None,
                "args": None,
                "plan": [dict(step) for step in self.args.get("steps") or ()],
                "join": join,
            }
        return {"thought": thought, "next_node": self.next_node, "args": dict(self.args),
                "plan": None, "join": None}  # fmt: skip

    @classmethod
    def from_legacy(cls, data: dict[str, Any]) -> PlannerAction:
        """Read an action in either on-disk form (`legacy_dump`'s, or the plain model's)."""
        thought = str(data.get("thought") or "")
        plan = data.get("plan")
        if plan:
            args: dict[str, Any] = {"steps": list(plan)}
            join = data.get("join")
            if isinstance(join, dict):
                join = {"node": join.get("node"), "args": join.get("args") or {},
                        "inject": join.get("inject")}  # fmt: skip
            args["join"] = join
            return cls(next_node=PARALLEL, args=args, thought=thought)
        next_node = data.get("next_node")
        args = dict(data.get("args") or {})
        if next_node is None:
            if "answer" in args or "raw_answer" in args:
                answer = args.get("answer", args.get("raw_answer"))
                args.setdefault("answer", answer)
                args.setdefault("raw_answer", answer)
            return cls(next_node=FINAL_RESPONSE, args=args, thought=thought)
        return cls(next_node=str(next_node), args=args, thought=thought)


class FinalResponseArgs(TypedDict, total=False):
    """The `args` of a `final_response` (only `answer` is needed)."""

    answer: str
    artifacts: dict[str, Any]
    sources: list[dict[str, Any]]
    suggested_actions: list[dict[str, Any]]
    confidence: float
    language: str


class PlanStep(TypedDict):
    """One entry of a `parallel` action's `args.steps`."""

    node: str
    args: dict[str, Any]


class PlanJoin(TypedDict, total=False):
    """A `parallel` action's `args.join` when it names a join tool."""

    node: str | None
    args: dict[str, Any]
    inject: dict[str, str]


class PlanArgs(TypedDict):
    """The `args` of a `parallel` action."""

    steps: list[PlanStep]
    join: NotRequired[PlanJoin | str]
