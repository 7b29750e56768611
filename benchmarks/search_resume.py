"""Resuming a sweep from its results store: half the plans stored against none, same run.

Llama-3-405B on the h100-16k cluster (16,384 GPUs, ~54k valid plans), swept in this
process with the analytical engine into a results store. Three sweeps, each timed
(median of five, interleaved, the collectives routed once beforehand so routing is not counted):
into an empty store (the baseline), into a store holding the first half of the table's
rows (what a sweep killed half-way leaves), and into a full one. A resume reads each
table's stored rows in one scan and keys, claims and costs only the rest, so the half
resume should take about half the baseline (ratio ~0.5) and the full one a small part of
it. Ends with one line of JSON.
Usage: python benchmarks/search_resume.py [--quick]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from superscale.hardware.catalog import clusters
from superscale.search.executors import run_sweep
from superscale.search.space import enumerate_plans
from superscale.search.store import ResultsStore

BASE: dict[str, Any] = {
    "model": "llama3-405b",
    "cluster": "h100-16k",
    "training": {"seq_len": 8192, "global_batch": 2048},
    "parallel": {"tp_comm_overlap": True},
}


def _sweep(tables: list[Any], db: Path) -> float:
    start = time.perf_counter()
    with ResultsStore(db) as store:
        run_sweep(tables, store=store)
    return time.perf_counter() - start


def _fresh(path: Path, source: Path | None) -> Path:
    for suffix in ("", "-wal", "-shm"):
        Path(str(path) + suffix).unlink(missing_ok=True)
    if source is not None:
        shutil.copyfile(source, path)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one run of each, not five")
    runs = 1 if parser.parse_args().quick else 5
    tables = enumerate_plans(BASE, clusters=[clusters().get("h100-16k")]).tables
    plans = sum(len(t) for t in tables)
    run_sweep(tables)  # route the cluster's collectives once
    work = Path(tempfile.mkdtemp(prefix="superscale-resume-"))
    try:
        full = work / "full.sqlite"
        _sweep(tables, _fresh(full, None))
        with contextlib.closing(sqlite3.connect(full)) as conn:
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        half = work / "half.sqlite"
        shutil.copyfile(full, half)
        with contextlib.closing(sqlite3.connect(half)) as conn:
            for tab, table in zip(range(1, len(tables) + 1), tables, strict=True):
                cut = (tab, len(table) // 2)
                conn.execute("DELETE FROM results WHERE tab = ? AND slot >= ?", cut)
            stored = int(conn.execute("SELECT COUNT(*) FROM results").fetchone()[0])
            conn.commit()
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        scratch = work / "sweep.sqlite"
        fresh_s, half_s, full_s = [], [], []
        for _ in range(runs):  # interleaved, so a busy moment of the machine hits all three
            fresh_s.append(_sweep(tables, _fresh(scratch, None)))
            half_s.append(_sweep(tables, _fresh(scratch, half)))
            full_s.append(_sweep(tables, _fresh(scratch, full)))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    fresh, resume_half, resume_full = (statistics.median(x) for x in (fresh_s, half_s, full_s))
    ratio = resume_half / fresh
    print(
        f"llama3-405b on 16,384 GPUs, {plans:,} plans into a results store: fresh "
        f"{fresh:.2f} s; resume with {stored / plans:.0%} stored {resume_half:.2f} s "
        f"({ratio:.2f}x the fresh sweep); resume with all stored {resume_full:.2f} s "
        f"({resume_full / fresh:.2f}x)"
    )
    print(
        json.dumps(
            {
                "plans": plans,
                "stored_fraction_half": round(stored / plans, 3),
                "fresh_s": round(fresh, 3),
                "resume_half_s": round(resume_half, 3),
                "resume_full_s": round(resume_full, 3),
                "resume_half_over_fresh": round(ratio, 3),
                "resume_full_over_fresh": round(resume_full / fresh, 3),
            }
        )
    )


if __name__ == "__main__":
    main()
