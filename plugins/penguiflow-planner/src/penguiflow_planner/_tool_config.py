"""Configuration of how the planner presents its tools (PenguiFlow 3.11's models): tool
search over deferred tools, search hints, a grouped tool directory, examples in the prompt, and
the size limits on what a tool's result may put in the prompt."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from penguiflow.catalog import ToolLoadingMode

__all__ = [
    "ObservationGuardrailConfig",
    "ToolDirectoryConfig",
    "ToolExamplesConfig",
    "ToolGroupConfig",
    "ToolHintsConfig",
    "ToolSearchConfig",
]


class ToolHintsConfig(BaseModel):
    """Put the `top_k` tools a search finds for the user's request into the prompt."""

    enabled: bool = False
    top_k: int = Field(default=5, ge=1, le=20)
    include_always_loaded: bool = False
    search_type: Literal["fts", "regex", "exact"] = "fts"


class ToolGroupConfig(BaseModel):
    """One group of the tool directory: the tools matching any of its rules."""

    name: str
    title: str | None = None
    trigger: str | None = None
    task_type: Literal["browser", "api", "code", "domain", "unknown"] | None = None
    match_namespaces: list[str] = Field(default_factory=list)
    match_tags: list[str] = Field(default_factory=list)
    match_name_patterns: list[str] = Field(default_factory=list)
    tool_names: list[str] = Field(default_factory=list)


class ToolDirectoryConfig(BaseModel):
    """A grouped overview of the deferred tools, in the prompt."""

    enabled: bool = False
    max_groups: int = Field(default=20, ge=1, le=100)
    max_tools_per_group: int = Field(default=6, ge=0, le=50)
    include_tool_counts: bool = True
    include_default_groups: bool = True
    groups: list[ToolGroupConfig] = Field(default_factory=list)


class ToolSearchConfig(BaseModel):
    """Deferred tools: tools whose loading mode is `deferred` stay out of the prompt until
    the model finds them with `tool_search`/`tool_get` or calls them by name. Activation lasts
    for the run, or for the session (`activation_scope="session"`, which needs a session id)."""

    enabled: bool = False
    cache_dir: str = ".penguiflow"
    default_loading_mode: ToolLoadingMode = ToolLoadingMode.ALWAYS
    always_loaded_patterns: list[str] = Field(
        default_factory=lambda: ["tasks.*", "tool_search", "tool_get", "finish"]
    )
    activation_scope: Literal["run", "session"] = "run"
    preferred_namespaces: list[str] = Field(default_factory=list)
    fts_fallback_to_regex: bool = True
    enable_incremental_index: bool = True
    rebuild_cache_on_init: bool = False
    max_search_results: int = 10
    hints: ToolHintsConfig = Field(default_factory=ToolHintsConfig)
    directory: ToolDirectoryConfig = Field(default_factory=ToolDirectoryConfig)


class ToolExamplesConfig(BaseModel):
    """Show each tool's examples (`@tool(examples=...)`) in the prompt."""

    enabled: bool = True
    max_examples_per_tool: int = Field(default=3, ge=1, le=10)
    include_descriptions: bool = True


class ObservationGuardrailConfig(BaseModel):
    """How much of a tool's result may reach the prompt: a result over
    `auto_artifact_threshold` characters is stored as an artifact (when an artifact store is
    available) and the model sees a reference with a preview; otherwise fields over
    `max_field_chars` and results over `max_observation_chars` are truncated, keeping the
    structure when `preserve_structure` is set."""

    max_observation_chars: int = Field(default=50_000, ge=1000)
    max_field_chars: int = Field(default=10_000, ge=100)
    truncation_suffix: str = "\n... [truncated: {truncated_chars} chars]"
    preserve_structure: bool = True
    auto_artifact_threshold: int = Field(default=20_000, ge=0)
    preview_length: int = Field(default=500, ge=0)
