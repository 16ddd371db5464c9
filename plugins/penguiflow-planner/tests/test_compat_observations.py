"""Shaping tool results for the model (PenguiFlow 3.11's observation guardrail and artifact
fields): placeholders for artifact-marked fields, storing oversized results as artifacts,
structure-preserving truncation, and the `observation_clamped`/`artifact_stored` events."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from penguiflow_planner._observations import (
    ShapedObservation,
    artifact_placeholder,
    merge_artifacts,
    shape_observation,
)
from penguiflow_planner._tool_config import ObservationGuardrailConfig
from penguiflow_planner.artifacts import ArtifactRef, InMemoryArtifactStore, NoOpArtifactStore
from pydantic import BaseModel, Field


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, str | None, dict[str, Any]]] = []

    async def __call__(
        self, event_type: str, extra: Mapping[str, Any], *, node_name: str | None = None
    ) -> None:
        self.events.append((event_type, node_name, dict(extra)))

    @property
    def types(self) -> list[str]:
        return [t for t, _, _ in self.events]


class FakeStore:
    """Records `put_text` calls; returns a PenguiFlow-shaped reference."""

    def __init__(self, *, fail: bool = False) -> None:
        self.fail = fail
        self.calls: list[tuple[str, dict[str, Any]]] = []

    async def put_text(self, text: str, **options: Any) -> ArtifactRef:
        self.calls.append((text, options))
        if self.fail:
            raise OSError("disk full")
        return ArtifactRef(
            id=f"art-{len(self.calls)}",
            mime_type=options.get("mime_type"),
            size_bytes=len(text.encode()),
            namespace=options.get("namespace"),
        )


class Plain(BaseModel):
    summary: str
    rows: list[int]


class Chart(BaseModel):
    title: str
    png: str = Field(json_schema_extra={"artifact": True})


class Report(BaseModel):
    summary: str
    pdf: str = Field(default="", json_schema_extra={"artifact": True})
    chart: Chart | None = None
    charts: list[Chart] = Field(default_factory=list)
    by_name: dict[str, Chart] = Field(default_factory=dict)
    rows: list[int] = Field(default_factory=list)


CONFIG = ObservationGuardrailConfig()


async def shape(result: Any, **options: Any) -> tuple[ShapedObservation, Recorder]:
    recorder = Recorder()
    options.setdefault("out_model", None)
    options.setdefault("config", CONFIG)
    options.setdefault("artifact_store", None)
    shaped = await shape_observation(result, tool_name="report", emit=recorder, **options)
    return shaped, recorder


async def test_a_small_result_is_shown_as_it_is() -> None:
    shaped, recorder = await shape(Plain(summary="ok", rows=[1]), out_model=Plain)
    assert shaped.stored == {"summary": "ok", "rows": [1]}
    assert shaped.for_llm == shaped.stored  # recorded on every step, as PenguiFlow does
    assert shaped.artifacts == {}
    assert recorder.events == []
    # an empty artifact field is still an artifact (PenguiFlow collects and hides it too)
    shaped, _ = await shape(Report(summary="ok"), out_model=Report)
    assert shaped.artifacts == {"pdf": ""}
    assert shaped.for_llm["pdf"] == "<artifact:str size=0>"
    # anything else becomes JSON too
    shaped, _ = await shape({"when": object})
    assert isinstance(shaped.stored["when"], str)


async def test_artifact_fields_are_collected_and_replaced_by_placeholders() -> None:
    chart = Chart(title="t", png="P" * 300)
    report = Report(
        summary="s", pdf="%PDF" + "x" * 996, chart=chart, charts=[chart, chart],
        by_name={"a": chart},
    )  # fmt: skip
    shaped, recorder = await shape(report, out_model=Report)
    assert shaped.stored["pdf"] == report.pdf  # the record keeps everything
    assert shaped.artifacts == {"pdf": report.pdf}  # the top level, as PenguiFlow collects
    view = shaped.for_llm
    assert view["pdf"] == "<artifact:str size=1000>"
    assert view["chart"] == {"title": "t", "png": "<artifact:str size=300>"}
    assert [c["png"] for c in view["charts"]] == ["<artifact:str size=300>"] * 2
    assert view["by_name"]["a"]["png"] == "<artifact:str size=300>"
    assert view["summary"] == "s"
    assert recorder.events == []


def test_placeholders_name_the_type_and_size() -> None:
    assert artifact_placeholder("abc") == "<artifact:str size=3>"
    assert artifact_placeholder([1, 2]) == "<artifact:list size=2>"
    assert artifact_placeholder({"a": 1}) == "<artifact:dict size=1>"
    assert artifact_placeholder(5) == "<artifact:int>"


def test_merge_artifacts_groups_by_tool() -> None:
    artifacts: dict[str, Any] = {"other": {"x": 1}}
    merge_artifacts(artifacts, "report", {"pdf": "a"})
    merge_artifacts(artifacts, "report", {"png": "b"})
    merge_artifacts(artifacts, "report", {"pdf": "c"})
    merge_artifacts(artifacts, "report", {})
    assert artifacts == {"other": {"x": 1}, "report": {"pdf": "c", "png": "b"}}


async def test_a_chart_no_longer_pushes_a_small_result_over_the_limit() -> None:
    report = Report(summary="s", pdf="x" * 60_000)
    store = FakeStore()
    shaped, recorder = await shape(report, out_model=Report, artifact_store=store)
    assert store.calls == [] and recorder.events == []
    assert shaped.for_llm["pdf"] == "<artifact:str size=60000>"


# -- oversized results ---------------------------------------------------------------------------


async def test_an_oversized_result_is_stored_as_an_artifact() -> None:
    store = FakeStore()
    result = {"text": "t" * 60_000, "n": 1}
    shaped, recorder = await shape(result, artifact_store=store)
    ((text, options),) = store.calls
    assert json.loads(text) == result  # the whole result, retrievable
    assert options == {"mime_type": "application/json", "namespace": "observation.report"}
    view = shaped.for_llm
    assert view["artifact"]["id"] == "art-1"
    assert "art-1" in view["summary"] and "report" in view["summary"]
    assert view["preview"] == json.dumps(result)[:500] + "..."
    assert shaped.stored == result
    assert recorder.types == ["artifact_stored", "observation_clamped"]
    stored_event = recorder.events[0]
    assert stored_event[1] == "report"
    assert stored_event[2]["artifact_id"] == "art-1"
    assert stored_event[2]["source"] == {"namespace": "observation.report"}
    clamped = recorder.events[1][2]
    assert clamped["method"] == "artifact"
    assert clamped["original_size"] == len(json.dumps(result))
    assert clamped["clamped_size"] == len(json.dumps(view, ensure_ascii=False))
    assert clamped["reduction_pct"] > 90


async def test_the_real_in_memory_store_keeps_the_result() -> None:
    store = InMemoryArtifactStore()
    result = {"rows": ["r" * 100 for _ in range(600)]}
    shaped, _ = await shape(result, artifact_store=store, scope=None)
    artifact_id = shaped.for_llm["artifact"]["id"]
    data = await store.get(artifact_id)
    assert data is not None and json.loads(data) == result


async def test_a_store_that_keeps_nothing_counts_as_no_store() -> None:
    # the planner's default store: a reference to nothing would show the model only a preview
    shaped, recorder = await shape({"t": "x" * 60_000}, artifact_store=NoOpArtifactStore())
    assert recorder.types == ["observation_clamped"]
    assert recorder.events[0][2]["method"] == "truncate"
    assert shaped.for_llm["t"].startswith("x" * 10_000)


async def test_a_scope_is_passed_to_the_store() -> None:
    store = FakeStore()
    await shape({"t": "x" * 60_000}, artifact_store=store, scope={"session_id": "s1"})
    assert store.calls[0][1]["scope"] == {"session_id": "s1"}


async def test_a_failing_store_falls_back_to_truncation() -> None:
    store = FakeStore(fail=True)
    shaped, recorder = await shape({"t": "x" * 60_000}, artifact_store=store)
    assert recorder.types == ["observation_clamped"]
    assert recorder.events[0][2]["method"] == "truncate"
    assert shaped.for_llm["t"].startswith("x" * 100)


async def test_without_a_store_fields_and_lists_are_truncated_in_place() -> None:
    result = {
        "text": "a" * 30_000,
        "nested": {"deep": "b" * 30_000, "keep": 1},
        "items": list(range(30)),
        "rows": [{"cell": "c" * 12_000}],
    }
    shaped, recorder = await shape(result)
    view = shaped.for_llm
    assert view["text"] == "a" * 10_000 + "\n... [truncated: 20000 chars]"
    assert view["nested"]["deep"].startswith("b" * 500)
    assert view["nested"]["keep"] == 1
    assert view["items"] == [*range(20), "... [10 more items]"]
    assert view["rows"][0]["cell"].startswith("c" * 500)
    assert len(json.dumps(view, ensure_ascii=False)) <= CONFIG.max_observation_chars
    assert shaped.stored == result  # nothing of the record was cut
    ((event, node, extra),) = recorder.events
    assert (event, node, extra["method"]) == ("observation_clamped", "report", "truncate")


async def test_a_result_of_many_small_fields_still_ends_within_the_limit() -> None:
    result = {f"key{i}": i for i in range(10_000)}
    shaped, _ = await shape(result)
    view = shaped.for_llm
    assert set(view) == {"truncated_observation", "truncation_note"}
    assert len(json.dumps(view, ensure_ascii=False)) <= CONFIG.max_observation_chars
    assert view["truncated_observation"].startswith('{"key0": 0')


async def test_structure_can_be_given_up_on_request() -> None:
    config = ObservationGuardrailConfig(preserve_structure=False, max_observation_chars=2000)
    shaped, _ = await shape({"t": 'quoted "text" ' * 1000}, config=config)
    view = shaped.for_llm
    assert set(view) == {"truncated_observation", "truncation_note"}
    assert len(json.dumps(view, ensure_ascii=False)) <= 2000


async def test_a_disabled_artifact_threshold_never_stores() -> None:
    store = FakeStore()
    config = ObservationGuardrailConfig(auto_artifact_threshold=0)
    await shape({"t": "x" * 60_000}, artifact_store=store, config=config)
    assert store.calls == []


async def test_a_bare_string_result_is_clamped_too() -> None:
    config = ObservationGuardrailConfig(max_observation_chars=1000, max_field_chars=100_000)
    shaped, _ = await shape("s" * 5000, config=config)
    assert len(json.dumps(shaped.for_llm)) <= 1000


async def test_a_suffix_template_with_other_fields_is_used_as_it_is() -> None:
    config = ObservationGuardrailConfig(truncation_suffix=" [cut {unknown}]")
    shaped, _ = await shape({"t": "x" * 60_000}, config=config)
    assert shaped.for_llm["t"].endswith(" [cut {unknown}]")


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=3000),
    lambda inner: st.lists(inner, max_size=40) | st.dictionaries(st.text(max_size=10), inner),
    max_leaves=60,
)


@settings(max_examples=60, deadline=None)
@given(_json, st.integers(min_value=1000, max_value=6000), st.booleans())
async def test_the_model_s_view_always_fits_the_limit(
    result: Any, limit: int, preserve: bool
) -> None:
    config = ObservationGuardrailConfig(
        max_observation_chars=limit, max_field_chars=400, preserve_structure=preserve
    )
    shaped, _ = await shape(result, config=config)
    view = shaped.stored if shaped.for_llm is None else shaped.for_llm
    assert len(json.dumps(view, ensure_ascii=False)) <= limit
    assert shaped.stored == json.loads(json.dumps(result))
