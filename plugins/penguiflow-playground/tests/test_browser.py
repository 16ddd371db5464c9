"""The page in real headless Chromium (Debian's `chromium` and `chromium-driver`, driven by
Selenium): the issue's scenario, screenshots of each view, and the page-load and live-view
latency measurements (written to the reports folder, never asserted).

`bash scripts/services/chromium.sh` installs the browser; without it these tests skip, and
fail under CI (`CI` set), where a missing browser is a broken setup."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import statistics
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from _support import paused_trace_events

pytestmark = pytest.mark.browser

selenium = pytest.importorskip("selenium", reason="pip install 'penguiflow-playground[browser]'")

from selenium import webdriver  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402


def _paths() -> tuple[str, str] | None:
    browser = os.environ.get("PENGUIFLOW_CHROMIUM") or shutil.which("chromium")
    driver = os.environ.get("PENGUIFLOW_CHROMEDRIVER") or shutil.which("chromedriver")
    if browser and driver:
        return browser, driver
    return None


class Server:
    """The playground served by uvicorn in a thread of its own (Selenium's calls block), with
    `call(coro)` to run code in the server's event loop."""

    def __init__(self, app: Any) -> None:
        import socket

        import uvicorn

        self.app = app
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        # The browser's streams stay open: the shutdown cuts them after a second.
        config = uvicorn.Config(
            app, log_level="warning", lifespan="on", timeout_graceful_shutdown=1
        )
        self.server = uvicorn.Server(config)
        self.server.install_signal_handlers = lambda: None  # type: ignore[method-assign]
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_until_complete(self.server.serve(sockets=[self.sock]))
        # The app does not own the state store it was given.
        self.loop.run_until_complete(self.app.state.hub.store.aclose())

    def __enter__(self) -> Server:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            assert self.thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(30)
        self.sock.close()
        assert not self.thread.is_alive(), "the server did not stop"
        self.loop.close()

    def call(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(30)


@pytest.fixture
def browser() -> Iterator[Any]:
    paths = _paths()
    if paths is None:
        if os.environ.get("CI"):
            pytest.fail("chromium and chromedriver are missing: bash scripts/services/chromium.sh")
        pytest.skip("chromium and chromedriver are missing: bash scripts/services/chromium.sh")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = paths[0]
    for argument in (
        "--headless=new",
        "--no-sandbox",  # CI runs as root
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--window-size=1366,900",
    ):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(executable_path=paths[1]), options=options)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def shots(reports_dir: Path) -> Path:
    folder = reports_dir / "playground"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def wait_until(check: Callable[[], Any], what: str, timeout: float = 30.0) -> Any:
    """Poll `check` (a page query) until it gives something truthy; fail naming `what`."""
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = check()
            if value:
                return value
        except Exception as exc:  # the element is not there yet, or was redrawn
            last = exc
        time.sleep(0.05)
    raise AssertionError(f"the page never showed {what} (last error: {last})")


def _app(tmp_path: Path) -> Any:
    from penguiflow_playground import create_playground_app
    from playground_agents import build_planner

    from penguiflow.state.sqlite import SQLiteStateStore

    store = SQLiteStateStore(f"sqlite:///{tmp_path / 'playground.db'}")
    return create_playground_app(
        build_planner(), state_store=store, target="playground_agents:build_planner"
    )


#: what of the History timeline lies outside it, and the document's widths
TIMELINE_LAYOUT = """
const box = document.getElementById("trace-timeline").getBoundingClientRect();
const outside = [...document.querySelectorAll("#trace-timeline *")]
  .filter((node) => {
    const r = node.getBoundingClientRect();
    return r.width > 0 && (r.left < box.left - 0.5 || r.right > box.right + 0.5);
  })
  .map((node) => `${node.className}: ${node.textContent}`);
const root = document.documentElement;
return {outside, scrollWidth: root.scrollWidth, clientWidth: root.clientWidth};
"""


#: the texts of the cells matching the selector (arguments[0]) that take more than one line
WRAPPED = """
return [...document.querySelectorAll(arguments[0])]
  .filter((cell) => {
    const range = document.createRange();
    range.selectNodeContents(cell);
    return cell.textContent.trim() !== "" && range.getClientRects().length !== 1;
  })
  .map((cell) => cell.textContent);
"""


def _view(driver: Any, name: str) -> None:
    driver.find_element(By.CSS_SELECTOR, f'nav button[data-view="{name}"]').click()
    wait_until(lambda: driver.find_element(By.ID, f"view-{name}").is_displayed(), f"{name} view")


def test_chat_pause_approve_live_tasks_history(browser: Any, tmp_path: Path, shots: Path) -> None:
    driver = browser
    with Server(_app(tmp_path)) as server:
        driver.get(f"{server.url}/?session=b1")
        wait_until(
            lambda: driver.find_element(By.TAG_NAME, "body").get_attribute("data-ready"), "ready"
        )
        header = driver.find_element(By.ID, "agent-info").text
        assert header == "planner · playground_agents:build_planner"

        # Chat: the planner researches, then pauses for approval; approved from the page.
        box = driver.find_element(By.ID, "chat-input")
        box.send_keys("Please #publish# the Q3 summary")
        driver.find_element(By.ID, "chat-send").click()
        wait_until(lambda: driver.find_element(By.ID, "pause-box").is_displayed(), "the pause")
        assert "Q3 summary" in driver.find_element(By.ID, "pause-payload").text
        driver.save_screenshot(str(shots / "chat-pause.png"))
        driver.find_element(By.CSS_SELECTOR, ".pause-approve").click()
        bubble = wait_until(
            lambda: driver.find_element(By.CSS_SELECTOR, '.msg.assistant[data-done="COMPLETE"]'),
            "the finished answer",
        )
        assert bubble.text == "Published the Q3 summary after your approval."
        assert not driver.find_element(By.ID, "pause-box").is_displayed()
        driver.save_screenshot(str(shots / "chat.png"))

        # Live: each step, with its tool, arguments and observation; the graph's counts.
        _view(driver, "live")
        rows = wait_until(
            lambda: (
                (r := driver.find_elements(By.CSS_SELECTOR, "#live-steps tr.step"))
                and len(r) >= 3
                and r
            ),
            "three steps",
        )
        tools = [r.find_element(By.CSS_SELECTOR, ".tool").text for r in rows]
        assert tools[:2] == ["research", "publish"]
        assert "OBS-NOTES" in rows[0].find_element(By.CSS_SELECTOR, ".observation").text
        research = driver.find_element(By.CSS_SELECTOR, '#live-graph g[data-node="research"]')
        assert "n=1" in research.text
        # Tokens per step (the scripted client's LLM calls are in the run's trace) and what
        # the run has left of its budgets.
        assert int(rows[0].find_element(By.CSS_SELECTOR, ".tokens").text) > 0
        budgets = driver.find_element(By.ID, "live-budgets").text
        assert "left: steps" in budgets and "of 60" in budgets and "deadline" in budgets

        # A parallel plan: two branches and their join, drawn in one step.
        _view(driver, "chat")
        box.send_keys("Research both #parallel#")
        driver.find_element(By.ID, "chat-send").click()
        wait_until(
            lambda: (
                len(driver.find_elements(By.CSS_SELECTOR, '.msg.assistant[data-done="COMPLETE"]'))
                == 2
            ),
            "the parallel turn's answer",
        )
        _view(driver, "live")
        plan = wait_until(
            lambda: driver.find_element(By.CSS_SELECTOR, "#live-steps td.tool.parallel"),
            "the parallel step",
        )
        wait_until(lambda: len(plan.find_elements(By.CSS_SELECTOR, "li.branch")) == 2, "branches")
        join = plan.find_element(By.CSS_SELECTOR, "li.join")
        assert "merge" in join.text and "OBS-MERGED 2" in join.text
        # Headers and numbers are one line each ("tokens", not "tok/ens").
        wrapped = driver.execute_script(
            WRAPPED, "#live-steps th, #live-steps td.ms, #live-steps td.tokens, #live-steps td.cost"
        )
        assert wrapped == [], f"live cells wrapped: {wrapped}"
        driver.save_screenshot(str(shots / "live.png"))

        # Tasks: the two turns' progress reads as steps, not JSON; no groups yet, said so.
        _view(driver, "tasks")
        wait_until(
            lambda: len(driver.find_elements(By.CSS_SELECTOR, "#tasks-table tbody tr")) == 2,
            "the two turns' tasks",
        )
        progress = [
            cell.text for cell in driver.find_elements(By.CSS_SELECTOR, "#tasks-table .progress")
        ]
        assert sorted(progress) == ["step 2", "step 3"], progress
        groups = driver.find_element(By.ID, "groups-section")
        assert "no task groups" in groups.text, groups.text

        # A background task in a group, with progress out of a known total; cancelled from
        # the page.
        async def spawn() -> str:
            from penguiflow_sessions.models import TaskType, UpdateType
            from penguiflow_sessions.server import Principal

            session = await server.app.state.session_host.open(Principal("local", "local"), "b1")
            group = await session.resolve_or_create_group(group_name="crawl")

            async def crawl(runtime: Any) -> None:
                await runtime.emit(UpdateType.PROGRESS, {"label": "pages", "done": 3, "total": 10})
                while True:
                    await runtime.steering.next()

            task_id: str = await session.spawn_task(
                crawl,
                task_type=TaskType.BACKGROUND,
                description="crawl the archive",
                group_id=group.group_id,
            )
            return task_id

        task_id = server.call(spawn())
        row_css = f'#tasks-table tr[data-task-id="{task_id}"]'
        row = wait_until(lambda: driver.find_element(By.CSS_SELECTOR, row_css), "the task")
        cell = wait_until(
            lambda: (
                (c := driver.find_element(By.CSS_SELECTOR, f"{row_css} .progress"))
                and "3/10" in c.text
                and c
            ),
            "the task's progress",
        )
        assert cell.text.startswith("pages") and "{" not in cell.text, cell.text
        bar = cell.find_element(By.TAG_NAME, "progress")
        assert (bar.get_attribute("value"), bar.get_attribute("max")) == ("3", "10")
        wait_until(lambda: "crawl" in groups.text, "the task's group")
        assert "no task groups" not in groups.text and "1 task" in groups.text, groups.text
        # Each status and type is one line (COMPLETE, not COMPLET/E), even in a narrow window.
        driver.set_window_size(700, 900)
        try:
            wrapped = driver.execute_script(
                WRAPPED, "#tasks-table td.task-status, #tasks-table td.task-type"
            )
        finally:
            driver.set_window_size(1366, 900)
        assert wrapped == [], f"status cells wrapped: {wrapped}"
        driver.save_screenshot(str(shots / "tasks.png"))
        row.find_element(By.CSS_SELECTOR, ".task-cancel").click()
        wait_until(
            lambda: (
                driver.find_element(By.CSS_SELECTOR, row_css).get_attribute("data-status")
                == "CANCELLED"
            ),
            "the task cancelled",
        )

        # History: the past trace opened as a timeline and steps.
        _view(driver, "history")
        trace_row = wait_until(
            lambda: next(
                row
                for row in driver.find_elements(By.CSS_SELECTOR, "#history-list .trace-row")
                if "Please #publish# the Q3 summary" in row.text
            ),
            "the first turn's trace",
        )
        trace_row.click()
        steps = wait_until(
            lambda: driver.find_elements(By.CSS_SELECTOR, "#trace-steps tr.trace-step"),
            "the trace's steps",
        )
        assert "research" in steps[0].text
        assert driver.find_elements(By.CSS_SELECTOR, "#trace-timeline .bar")
        # The run resumed after its pause: every bar and label of the timeline stays inside
        # it (the pause drawn as a marked band), and the page does not scroll sideways.
        layout = driver.execute_script(TIMELINE_LAYOUT)
        assert layout["outside"] == [], f"past the timeline's edges: {layout}"
        assert layout["scrollWidth"] <= layout["clientWidth"], f"scrolls sideways: {layout}"
        gap = driver.find_element(By.CSS_SELECTOR, "#trace-timeline .gap")
        assert "paused" in (gap.get_attribute("title") or ""), gap.get_attribute("title")
        assert "/export" in (driver.find_element(By.ID, "trace-export").get_attribute("href") or "")
        driver.save_screenshot(str(shots / "history.png"))

        # A run that waited ten minutes for its approval, opened by URL: the wait is one
        # compressed band, and the work on either side keeps the width.
        long_wait = "4bf92f3577b34da6a3ce929d0e0e4736"
        started = time.time() - 900.0

        async def record() -> None:
            from penguiflow_playground import TraceRecord

            from penguiflow.observability import publish

            hub = server.app.state.hub
            await hub.register(
                TraceRecord(
                    long_wait,
                    "b1",
                    "local",
                    "local",
                    "planner.chat",
                    "Publish after a ten-minute approval",
                    started_at=started,
                    ended_at=started + 600.1,
                    status="complete",
                )
            )
            for event in paused_trace_events(long_wait, started, pause_s=600.0):
                await publish(event)
            await hub.flush()

        server.call(record())
        driver.get(f"{server.url}/?session=b1&trace={long_wait}")
        gap = wait_until(
            lambda: driver.find_element(By.CSS_SELECTOR, "#trace-timeline .gap"), "the long pause"
        )
        assert "paused for 10 min 0 s" in (gap.get_attribute("title") or "")
        layout = driver.execute_script(TIMELINE_LAYOUT)
        assert layout["outside"] == [], f"past the timeline's edges: {layout}"
        assert layout["scrollWidth"] <= layout["clientWidth"], f"scrolls sideways: {layout}"
        width = driver.find_element(By.ID, "trace-timeline").size["width"]
        assert gap.size["width"] <= 0.06 * width
        first_run = driver.find_element(
            By.CSS_SELECTOR, '#trace-timeline .bar[title^="planner.run"]'
        )
        assert first_run.find_element(By.CSS_SELECTOR, ".fill").size["width"] > 0.5 * width
        driver.save_screenshot(str(shots / "history-long-pause.png"))

        # Memory and context.
        wait_until(
            lambda: driver.find_element(By.TAG_NAME, "body").get_attribute("data-ready"), "ready"
        )
        _view(driver, "memory")
        wait_until(
            lambda: driver.find_element(By.ID, "memory-version").text.isdigit(), "the version"
        )
        driver.save_screenshot(str(shots / "memory.png"))
        driver.get("about:blank")  # the page's streams close before the server stops


def test_measure_page_load_and_live_latency(
    browser: Any, tmp_path: Path, shots: Path, reports_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A 50-step run paced at 10 steps a second: page load and emitted-to-drawn latency of
    every live event, written to .reports/playground-bench.json (reported, not asserted)."""
    monkeypatch.setenv("PLAYGROUND_TICK_S", "0.1")
    driver = browser
    with Server(_app(tmp_path)) as server:
        driver.get(f"{server.url}/?session=perf")
        wait_until(
            lambda: driver.execute_script("return window.__pg && window.__pg.ready"), "ready"
        )
        navigation = driver.execute_script(
            "const n = performance.getEntriesByType('navigation')[0];"
            "return {load: n.loadEventEnd - n.startTime,"
            " dom: n.domContentLoadedEventEnd - n.startTime, ready: window.__pg.loadMs};"
        )
        _view(driver, "live")
        driver.execute_script("window.__pg.latencies = []; window.__pg.drawn = 0;")
        started = time.monotonic()
        driver.execute_script(
            "fetch('/api/sessions/perf/chat', {method: 'POST', headers: {'Content-Type':"
            " 'application/json'}, body: JSON.stringify({query: 'run #steps50#'})})"
        )
        rows = wait_until(
            lambda: len(driver.find_elements(By.CSS_SELECTOR, "#live-steps tr.step")) >= 51,
            "51 steps",
            timeout=120,
        )
        run_s = time.monotonic() - started
        driver.save_screenshot(str(shots / "live-50-steps.png"))
        latencies = driver.execute_script("return window.__pg.latencies")
        driver.get("about:blank")
    assert rows and latencies
    ordered = sorted(latencies)
    report = {
        "benchmark": "playground_live_view",
        "steps": 50,
        "pace": "one step per 0.1 s (10 steps/s)",
        "events_drawn": len(latencies),
        "run_s": round(run_s, 2),
        "page_load_ms": round(navigation["load"], 1),
        "page_dom_ready_ms": round(navigation["dom"], 1),
        "page_ready_ms": round(navigation["ready"], 1),
        "live_latency_ms_p50": round(statistics.median(ordered), 1),
        "live_latency_ms_p95": round(ordered[int(0.95 * (len(ordered) - 1))], 1),
        "live_latency_ms_max": round(ordered[-1], 1),
    }
    (reports_dir / "playground-bench.json").write_text(json.dumps(report, indent=2))
    print(json.dumps(report))
