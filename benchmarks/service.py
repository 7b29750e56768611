"""Load on the web service over loopback: concurrent simulate requests, then concurrent
small plan searches (jobs), against a `superscale web` server started for the run.

Reports throughput, p50/p99 latency, errors (must be 0) and the server's peak memory
(VmHWM). Only 127.0.0.1 is used; every request is bounded (a 16-GPU Llama 3 8B scenario).
Ends with one line of JSON of its figures.
Usage: python benchmarks/service.py [--quick]   (--quick: 200 simulates + 20 searches)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from typing import Any

import httpx

SCENARIO: dict[str, Any] = {
    "model": "llama3-8b",
    "cluster": {"system": "dgx-h100", "count": 2},
    "training": {"seq_len": 4096, "global_batch": 32, "precision": "bf16"},
    "parallel": {"tp": 8, "pp": 2, "recompute": "selective"},
}


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _peak_rss_mib(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/status", encoding="utf-8") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def _simulate(client: httpx.AsyncClient, latencies: list[float]) -> bool:
    t0 = time.perf_counter()
    response = await client.post("/api/simulate", json={"scenario": SCENARIO})
    latencies.append(time.perf_counter() - t0)
    return response.status_code == 200 and response.json()["step_time_s"] > 0


async def _search(client: httpx.AsyncClient, latencies: list[float], plans: list[int]) -> bool:
    t0 = time.perf_counter()
    response = await client.post("/api/search", json={"scenario": SCENARIO, "top": 3})
    if response.status_code != 202:
        return False
    job = response.json()
    while job["state"] in ("queued", "running"):
        await asyncio.sleep(0.05)
        job = (await client.get(f"/api/jobs/{job['id']}")).json()
    latencies.append(time.perf_counter() - t0)
    if job["state"] == "done":
        plans.append(job["result"]["evaluated_now"])
    return job["state"] == "done"


async def _phase(make: Any, n: int) -> tuple[int, float]:
    t0 = time.perf_counter()
    results = await asyncio.gather(*(make() for _ in range(n)), return_exceptions=True)
    errors = sum(1 for r in results if r is not True)
    return errors, time.perf_counter() - t0


async def _load(base: str, simulates: int, searches: int) -> dict[str, Any]:
    limits = httpx.Limits(max_connections=simulates, max_keepalive_connections=simulates)
    async with httpx.AsyncClient(base_url=base, timeout=300, limits=limits) as client:
        await _simulate(client, [])  # warm: catalogs and the cost model load once
        sim_lat: list[float] = []
        sim_errors, sim_wall = await _phase(lambda: _simulate(client, sim_lat), simulates)
        search_lat: list[float] = []
        plans: list[int] = []
        search_errors, search_wall = await _phase(
            lambda: _search(client, search_lat, plans), searches
        )
    return {
        "simulate_requests": simulates,
        "simulate_per_s": round(simulates / sim_wall, 1),
        "simulate_p50_ms": round(1e3 * statistics.median(sim_lat), 1) if sim_lat else None,
        "simulate_p99_ms": round(1e3 * _pct(sim_lat, 0.99), 1) if sim_lat else None,
        "simulate_errors": sim_errors,
        "searches": searches,
        "searches_per_s": round(searches / search_wall, 2),
        "search_p50_s": round(statistics.median(search_lat), 3) if search_lat else None,
        "search_p99_s": round(_pct(search_lat, 0.99), 3) if search_lat else None,
        "search_plans_per_s": round(sum(plans) / search_wall, 1),
        "search_errors": search_errors,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="200 simulates, 20 searches")
    args = parser.parse_args()
    simulates, searches = (200, 20) if args.quick else (1000, 60)
    port = _free_port()
    command = [sys.executable, "-m", "superscale", "web", "--host", "127.0.0.1",
               "--port", str(port), "--workers", "2", "--queue-limit", str(searches)]  # fmt: skip
    server = subprocess.Popen(command, stderr=subprocess.DEVNULL, env={**os.environ})
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(base + "/api/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline or server.poll() is not None:
                raise SystemExit("the server did not start")
            time.sleep(0.2)
        figures = asyncio.run(_load(base, simulates, searches))
        figures["server_peak_rss_mib"] = round(_peak_rss_mib(server.pid), 1)
    finally:
        server.terminate()
        server.wait(timeout=30)
    figures["errors"] = figures["simulate_errors"] + figures["search_errors"]
    print(
        f"simulate  {simulates:>5} concurrent  {figures['simulate_per_s']:>8,.1f} req/s  p50 "
        f"{figures['simulate_p50_ms']} ms  p99 {figures['simulate_p99_ms']} ms  errors "
        f"{figures['simulate_errors']}"
    )
    print(
        f"search    {searches:>5} concurrent  {figures['searches_per_s']:>8,.2f} jobs/s  p50 "
        f"{figures['search_p50_s']} s  p99 {figures['search_p99_s']} s  "
        f"({figures['search_plans_per_s']:,.0f} plans/s)  errors {figures['search_errors']}"
    )
    print(f"server peak memory {figures['server_peak_rss_mib']} MiB")
    print(json.dumps(figures))
    if figures["errors"]:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
