"""The search index behind `tool_search`: full-text (SQLite FTS5), regular-expression and exact
search over the planner's tools.

The FTS index is a SQLite file under `ToolSearchConfig.cache_dir`, named by a digest of the
catalog it indexes (every field a search reads, and the index's schema version). So:

- a changed catalog gets a fresh index (a new digest), never a stale one;
- two planners with different catalogs never share an index, even with one `cache_dir`;
- planners with the same catalog share one file, which is only read once written: it is
  built in a temporary file and renamed into place, so a reader never sees half an index.

Old files are not removed (another process may still use one); any `tool-search-*.sqlite3`
in the cache directory can be deleted at any time, it is rebuilt when needed. Regex and exact
search need no file: they run over the records in memory. When CPython's SQLite lacks FTS5, or
the cache directory cannot be written, full-text search falls back as configured.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import sqlite3
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from penguiflow.errors import UsageError, describe_exception

__all__ = ["IndexRecord", "SearchHit", "SearchType", "ToolIndex", "name_tokens"]

logger = logging.getLogger("penguiflow.planner")

SearchType = Literal["fts", "regex", "exact"]

#: Bumped whenever the file layout or what is indexed changes: part of the file's digest.
_SCHEMA_VERSION = "penguiflow-tool-index-1"
#: Ties are broken towards tools that change less of the world.
_SIDE_EFFECT_RANK = {"pure": 0, "read": 1, "write": 2, "external": 3, "stateful": 4}
_WORD = re.compile(r"[^\W_]+")


def name_tokens(text: str) -> list[str]:
    """The words of `text` (letters and digits; `_`, `.` and punctuation separate)."""
    return _WORD.findall(text or "")


@dataclass(frozen=True, slots=True)
class IndexRecord:
    """What the index knows of one tool. `tags` are the declared tags plus the words of the
    name (so `github.create_issue` is found by `issue`); `always_loaded` tools are left out of
    results unless asked for."""

    name: str
    description: str
    tags: tuple[str, ...]
    declared_tags: tuple[str, ...]
    side_effects: str
    loading_mode: str
    always_loaded: bool

    @classmethod
    def create(
        cls,
        *,
        name: str,
        description: str,
        declared_tags: Iterable[str],
        side_effects: str,
        loading_mode: str,
        always_loaded: bool,
    ) -> IndexRecord:
        declared = tuple(dict.fromkeys(str(tag) for tag in declared_tags if str(tag).strip()))
        words = (word.lower() for word in name_tokens(name))
        return cls(
            name=name,
            description=description,
            tags=tuple(dict.fromkeys((*declared, *words))),
            declared_tags=declared,
            side_effects=side_effects,
            loading_mode=loading_mode,
            always_loaded=always_loaded,
        )


@dataclass(frozen=True, slots=True)
class SearchHit:
    """One result: PenguiFlow's `ToolSearchResult` fields."""

    name: str
    description: str
    score: float
    match_type: SearchType
    loading_mode: str


def catalog_digest(records: Sequence[IndexRecord]) -> str:
    """A digest of everything the index holds: equal digests, interchangeable indexes."""
    payload = {
        "schema": _SCHEMA_VERSION,
        "records": sorted((asdict(record) for record in records), key=lambda r: r["name"]),
    }
    canonical = json.dumps(payload, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def fts5_supported() -> bool:
    """Whether this Python's SQLite has the FTS5 extension."""
    conn = sqlite3.connect(":memory:")
    try:
        conn.execute("CREATE VIRTUAL TABLE probe USING fts5(body)")
    except sqlite3.OperationalError:
        return False
    finally:
        conn.close()
    return True


class ToolIndex:
    """Search over a fixed set of `IndexRecord`s (see the module's docstring for the file)."""

    def __init__(
        self,
        records: Sequence[IndexRecord],
        *,
        connection: sqlite3.Connection | None,
        path: Path | None,
        preferred_namespaces: Sequence[str] = (),
        fts_fallback_to_regex: bool = True,
        max_results: int = 10,
    ) -> None:
        self._records = {record.name: record for record in records}
        self._conn = connection
        #: the index file, None when full-text search is unavailable or held in memory
        self.path = path
        self._preferred = list(preferred_namespaces)
        self._fallback: SearchType = "regex" if fts_fallback_to_regex else "exact"
        self._max_results = max_results if max_results > 0 else 10
        self._closed = False

    @classmethod
    def open(
        cls,
        records: Sequence[IndexRecord],
        *,
        cache_dir: str | os.PathLike[str],
        rebuild: bool = False,
        preferred_namespaces: Sequence[str] = (),
        fts_fallback_to_regex: bool = True,
        max_results: int = 10,
    ) -> ToolIndex:
        """The index of `records`, its FTS file under `cache_dir` reused when it holds this
        very catalog (unless `rebuild`), built otherwise."""
        conn: sqlite3.Connection | None = None
        path: Path | None = None
        if fts5_supported():
            digest = catalog_digest(records)
            path = Path(cache_dir) / f"tool-search-{digest[:32]}.sqlite3"
            try:
                conn = _open_file(path, records, digest, rebuild=rebuild)
            except (OSError, sqlite3.Error) as exc:
                # A read-only or full disk must not stop the planner: index in memory.
                logger.warning(
                    "tool search index %s cannot be written (%s); indexing in memory instead",
                    path,
                    describe_exception(exc),
                )
                path = None
                conn = sqlite3.connect(":memory:", check_same_thread=False)
                _fill(conn, records, catalog_digest(records))
        else:
            logger.info("SQLite has no FTS5 here: full-text tool search uses its fallback")
        return cls(
            records,
            connection=conn,
            path=path,
            preferred_namespaces=preferred_namespaces,
            fts_fallback_to_regex=fts_fallback_to_regex,
            max_results=max_results,
        )

    @property
    def fts_available(self) -> bool:
        return self._conn is not None

    @property
    def records(self) -> dict[str, IndexRecord]:
        return dict(self._records)

    def close(self) -> None:
        self._closed = True
        if self._conn is not None:
            self._conn.close()

    def search(
        self,
        query: str,
        *,
        search_type: SearchType = "fts",
        limit: int = 8,
        include_always_loaded: bool = False,
        allowed_names: set[str] | None = None,
        tags: Sequence[str] = (),
        namespace: str | None = None,
    ) -> tuple[list[SearchHit], SearchType]:
        """The best `limit` tools for `query` (at most the configured maximum) among
        `allowed_names` (all when None), and the search type actually used."""
        if self._closed:
            raise UsageError("the tool search index is closed; search it before aclose()")
        query = query.strip()
        effective: SearchType = search_type
        if effective == "fts" and self._conn is None:
            effective = self._fallback
        if not query:
            return [], effective
        scored: dict[str, tuple[float, SearchType]] = {}
        if effective == "fts":
            found = self._fts(query)
            if found is None:  # nothing to match on (punctuation only): fall back
                effective = self._fallback
            else:
                scored = {name: (score, "fts") for name, score in found.items()}
        if effective == "regex":
            scored = {name: (s, "regex") for name, s in self._regex(query).items()}
        elif effective == "exact":
            scored = {name: (1.0, "exact") for name in self._exact(query)}
        wanted = {tag.strip() for tag in tags if tag.strip()}
        ns = namespace.strip() if namespace else ""
        hits = []
        for name, (score, match_type) in scored.items():
            record = self._records.get(name)
            if record is None or (allowed_names is not None and name not in allowed_names):
                continue
            if record.always_loaded and not include_always_loaded:
                continue
            if not wanted.issubset(record.declared_tags):
                continue
            if ns and name != ns and not name.startswith(ns + "."):
                continue
            hit = SearchHit(name, record.description, score, match_type, record.loading_mode)
            hits.append((self._rank(hit, record), hit))
        hits.sort(key=lambda pair: pair[0])
        cap = min(max(int(limit), 1), self._max_results)
        return [hit for _, hit in hits[:cap]], effective

    def _rank(self, hit: SearchHit, record: IndexRecord) -> tuple[Any, ...]:
        namespace = hit.name.split(".", 1)[0]
        preferred = (
            self._preferred.index(namespace)
            if namespace in self._preferred
            else len(self._preferred) + 1
        )
        side = _SIDE_EFFECT_RANK.get(record.side_effects, len(_SIDE_EFFECT_RANK))
        return (-hit.score, preferred if self._preferred else 0, side, len(hit.name), hit.name)

    def _fts(self, query: str) -> dict[str, float] | None:
        words = name_tokens(query)
        if not words:
            return None
        assert self._conn is not None
        quoted = [f'"{word}"' for word in words]
        # Every word first; when nothing has them all, any of them (recall over precision).
        rows = self._match(" AND ".join(quoted)) or self._match(" OR ".join(quoted))
        if not rows:
            return {}
        # bm25() is lower for better matches (negative); relevance is its negation, scaled so
        # the best hit scores 1.
        relevance = {name: max(-float(rank), 0.0) for name, rank in rows}
        best = max(relevance.values())
        return {name: (value / best if best > 0 else 1.0) for name, value in relevance.items()}

    def _match(self, expression: str) -> list[tuple[str, float]]:
        assert self._conn is not None
        sql = "SELECT name, bm25(tools_fts) FROM tools_fts WHERE tools_fts MATCH ?"
        return [(str(name), float(rank)) for name, rank in self._conn.execute(sql, (expression,))]

    def _regex(self, query: str) -> dict[str, float]:
        pattern: re.Pattern[str] | None
        try:
            pattern = re.compile(query, re.IGNORECASE)
        except re.error:
            pattern = None
        if pattern is None or any(ch.isspace() for ch in query):
            # Words, not a pattern: match any of them.
            words = name_tokens(query)
            if not words:
                return {}
            pattern = re.compile("|".join(re.escape(word) for word in words), re.IGNORECASE)
        scores: dict[str, float] = {}
        for record in self._records.values():
            if pattern.fullmatch(record.name):
                scores[record.name] = 0.95
            elif pattern.match(record.name):
                scores[record.name] = 0.9
            elif pattern.search(record.name):
                scores[record.name] = 0.85
            elif pattern.search(record.description) or pattern.search(" ".join(record.tags)):
                scores[record.name] = 0.75
        return scores

    def _exact(self, query: str) -> list[str]:
        wanted = query.lower()
        return [
            record.name
            for record in self._records.values()
            if wanted in (record.name.lower(), record.description.lower())
            or any(wanted == tag.lower() for tag in record.tags)
        ]


def _open_file(
    path: Path, records: Sequence[IndexRecord], digest: str, *, rebuild: bool
) -> sqlite3.Connection:
    if not rebuild and path.exists():
        conn = _connect_read_only(path)
        try:
            row = conn.execute("SELECT value FROM meta WHERE key = 'digest'").fetchone()
            if row is not None and row[0] == digest:
                return conn
        except sqlite3.Error:
            pass  # not one of ours, or damaged: rebuilt below
        conn.close()
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex}.tmp")
    try:
        with contextlib.closing(sqlite3.connect(temporary)) as conn:
            _fill(conn, records, digest)
        os.replace(temporary, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            temporary.unlink()
    logger.info("tool search index built", extra={"path": str(path), "tools": len(records)})
    return _connect_read_only(path)


def _connect_read_only(path: Path) -> sqlite3.Connection:
    # Read-only: once built, an index file is never written again by a planner.
    return sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, check_same_thread=False)


def _fill(conn: sqlite3.Connection, records: Sequence[IndexRecord], digest: str) -> None:
    with conn:
        conn.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        conn.execute(
            "CREATE VIRTUAL TABLE tools_fts USING fts5(name, description, tags, "
            "tokenize='porter unicode61')"
        )
        conn.executemany(
            "INSERT INTO tools_fts (name, description, tags) VALUES (?, ?, ?)",
            [(r.name, r.description, " ".join(r.tags)) for r in records],
        )
        conn.executemany(
            "INSERT INTO meta (key, value) VALUES (?, ?)",
            [("digest", digest), ("schema", _SCHEMA_VERSION)],
        )
