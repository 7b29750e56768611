"""The page in a real browser (Debian's Chromium through Playwright, launched by path):
load it, run a simulation with its timeline and a small search, check that the charts
render and that the numbers on the page are the API's, and save a screenshot.

`make test` installs Chromium with apt when /usr/bin/chromium is missing; this test skips
only when no Chromium binary can be found at all. SUPERSCALE_SCREENSHOT=path also writes
the screenshot there (docs/workbench.png is made this way).
"""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

pytest.importorskip("fastapi")
playwright_api = pytest.importorskip("playwright.sync_api")
uvicorn = pytest.importorskip("uvicorn")

from service_support import SMALL  # noqa: E402

from superscale.service import create_app  # noqa: E402

CHROMIUM = next(
    (p for p in ("/usr/bin/chromium", shutil.which("chromium"), shutil.which("chromium-browser"))
     if p and Path(p).exists()),
    None,
)  # fmt: skip


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = uvicorn.Config(
        create_app(SMALL), host="127.0.0.1", port=port, log_level="warning", ws="none"
    )
    srv = uvicorn.Server(config)
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not srv.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    srv.should_exit = True
    thread.join(timeout=10)


@pytest.mark.skipif(CHROMIUM is None, reason="no Chromium binary (apt-get install chromium)")
def test_page_simulates_and_searches(server: str, tmp_path: Path) -> None:
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1360, "height": 1500})
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(server + "/")
        page.wait_for_selector("body[data-ready=true]")
        page.select_option("#model", "llama3-8b")
        page.fill("#count", "2")
        page.fill("#global-batch", "32")
        page.fill("#seq-len", "4096")
        page.fill("#tp", "8")
        page.fill("#pp", "2")
        page.check("#trace")
        page.click("#run-simulate")
        page.wait_for_selector("svg[data-chart=timeline] rect[data-slice]", timeout=30_000)

        scenario = page.evaluate("window.workbench.scenario()")
        api = httpx.post(
            server + "/api/simulate",
            json={"scenario": scenario, "engine": "event", "trace": True},
            timeout=60,
        ).json()
        shown = float(page.get_attribute("[data-kpi=step_time_s]", "data-value") or "nan")
        assert shown == api["step_time_s"]
        assert float(page.get_attribute("[data-kpi=mfu]", "data-value") or "nan") == api["mfu"]
        assert f"{api['step_time_s']:.4g}" in page.text_content("[data-kpi=step_time_s]")
        parts = page.query_selector_all("#chart-breakdown rect[data-part]")
        drawn = {r.get_attribute("data-part"): float(r.get_attribute("data-value")) for r in parts}
        assert drawn and all(api["breakdown_s"][k] == v for k, v in drawn.items())
        memory = page.query_selector_all("#chart-memory rect[data-part]")
        assert {m.get_attribute("data-part") for m in memory} >= {"params_gib", "activations_gib"}
        gpus = page.query_selector_all("#chart-placement rect[data-rank]")
        assert len(gpus) == api["gpus"]
        tp_ranks = page.query_selector_all("#chart-placement rect[data-groups~=tp]")
        assert len(tp_ranks) == api["placement"]["tp"]["size"]

        page.fill("#search-gpus", "8..16")
        page.click("#run-search")
        page.wait_for_selector("#search-top table", timeout=60_000)
        page.wait_for_selector("svg[data-chart=scatter] circle")
        found = page.evaluate("window.workbench.lastSearch")
        assert page.get_attribute("#search-progress > div", "data-state") == "done"
        best = found["top"][0]
        row = page.text_content("#search-top tbody tr")
        assert f"{best['step_time_s']:.4g}" in row and str(best["gpus"]) in row
        assert len(page.query_selector_all("svg[data-chart=scatter] circle")) >= len(found["top"])
        assert not errors, errors

        permalink = page.evaluate("window.workbench.permalink()")
        reopened = browser.new_page()
        reopened.goto(permalink)
        reopened.wait_for_selector("body[data-ready=true]")
        assert reopened.evaluate("window.workbench.scenario()") == scenario

        page.evaluate("window.scrollTo(0, 0)")
        shot = tmp_path / "workbench.png"
        page.screenshot(path=str(shot), full_page=False)
        assert shot.stat().st_size > 10_000
        target = os.environ.get("SUPERSCALE_SCREENSHOT")
        if target:
            page.set_viewport_size({"width": 1360, "height": 1180})
            page.screenshot(path=target, full_page=False)
        browser.close()
