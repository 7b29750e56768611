"""Sweeps give the same records whatever the backend, resume from the store, share one
store between concurrent sweeps, and leave no process behind when killed."""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from superscale.errors import SpecError
from superscale.hardware.spec import Cluster
from superscale.search import executors
from superscale.search.evaluate import (
    Evaluated,
    base_digest,
    evaluate_batch,
    evaluate_table,
    plan_key,
    plan_keys_of,
)
from superscale.search.executors import run_sweep, sweep_records, table_digest, table_keys
from superscale.search.space import PlanTable, enumerate_plans
from superscale.search.store import ResultsStore


@pytest.fixture
def tables(tiny_scenario_dict: dict[str, Any]) -> list[PlanTable]:
    cluster = Cluster.model_validate(tiny_scenario_dict["cluster"])
    table = enumerate_plans(tiny_scenario_dict, clusters=[cluster]).tables[0]
    return [table.take(np.arange(400))]


def test_table_keys_match_plan_key(tables: list[PlanTable]) -> None:
    table = tables[0]
    candidates = table.candidates()[:50]
    assert table_keys(table)[:50] == [plan_key(c) for c in candidates]


def test_two_workers_match_one(tables: list[PlanTable]) -> None:
    one = sweep_records(run_sweep(tables, batch_size=64))
    two = sweep_records(run_sweep(tables, workers=2, batch_size=64))
    assert len(one) == len(tables[0])
    assert [r["key"] for r in one] == sorted(table_keys(tables[0]))
    assert one == two


def test_records_match_evaluate_batch(tables: list[PlanTable]) -> None:
    swept = sweep_records(run_sweep(tables, batch_size=97))
    assert swept == sorted(evaluate_batch(tables[0].candidates()), key=lambda r: r["key"])


def test_resume_evaluates_only_missing(
    tables: list[PlanTable], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = tmp_path / "sweep.sqlite"
    calls: list[int] = []
    n = len(tables[0])

    def dies_after_two(batch: PlanTable) -> Evaluated:
        if len(calls) == 2:
            raise KeyboardInterrupt  # the sweep is stopped between batches
        calls.append(len(batch))
        return evaluate_table(batch)

    with ResultsStore(db) as store, pytest.raises(KeyboardInterrupt):
        run_sweep(tables, evaluate=dies_after_two, store=store, batch_size=50)
    seen: list[str] = []

    def counting(batch: PlanTable) -> Evaluated:
        seen.extend(plan_keys_of(batch.parallels(), base_digest(batch.base)))
        return evaluate_table(batch)

    progress: list[tuple[int, int]] = []
    keyed: list[int] = []
    real_keys = executors.plan_keys_of

    def counting_keys(parallels: list[dict[str, Any]], digest: str) -> list[str]:
        keyed.append(len(parallels))
        return real_keys(parallels, digest)

    monkeypatch.setattr(executors, "plan_keys_of", counting_keys)
    with ResultsStore(db) as store:
        assert store.count() == 100
        stored = {r["key"] for r in store.records()}
        records = run_sweep(
            tables,
            evaluate=counting,
            store=store,
            batch_size=50,
            progress=lambda done, total: progress.append((done, total)),
        )
        assert store.count() == n
    assert sum(keyed) == n - 100  # stored plans are skipped by slot, never keyed
    assert len(seen) == n - 100
    assert not stored & set(seen)
    assert progress[0] == (0, n - 100)
    assert progress[-1] == (n - 100, n - 100)
    assert sweep_records(records) == sweep_records(run_sweep(tables, batch_size=50))
    assert sweep_records(records) == sorted(store_records(db), key=lambda r: r["key"])


def test_plans_stored_by_another_table_are_found_by_key(
    tables: list[PlanTable], tmp_path: Path
) -> None:
    # A store filled from a smaller table (another enumeration: other limits or GPUs) has
    # no slots for the full one; its plans are still found by key when claimed.
    part = tables[0].take(np.arange(150))
    assert table_digest(part) != table_digest(tables[0])
    assert table_digest(tables[0]) == table_digest(tables[0].take(np.arange(400)))
    costed: list[int] = []

    def counting(batch: PlanTable) -> Evaluated:
        costed.append(len(batch))
        return evaluate_table(batch)

    with ResultsStore(tmp_path / "s.sqlite") as store:
        run_sweep([part], store=store, batch_size=64)
        whole = run_sweep(tables, evaluate=counting, store=store, batch_size=64)
        assert store.count() == len(tables[0])
    assert sum(costed) == len(tables[0]) - 150
    assert sweep_records(whole) == sweep_records(run_sweep(tables, batch_size=64))


def test_bad_options(tables: list[PlanTable], monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(SpecError, match="unknown backend"):
        run_sweep(tables, backend="slurm")
    with pytest.raises(SpecError, match="workers"):
        run_sweep(tables, workers=0)
    with pytest.raises(SpecError, match="needs --backend ray"):
        run_sweep(tables, address="ray://head:10001")
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now raises ImportError
    with pytest.raises(SpecError, match=r"superscale\[ray\]"):
        run_sweep(tables, backend="ray")


@pytest.mark.skipif(importlib.util.find_spec("ray") is None, reason="ray is not installed")
def test_ray_matches_local(tables: list[PlanTable], tmp_path: Path) -> None:
    import ray

    ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False)
    try:
        with ResultsStore(tmp_path / "ray.sqlite") as store:
            remote = run_sweep(tables, backend="ray", store=store, batch_size=100)
            assert store.count() == len(tables[0])
    finally:
        ray.shutdown()
    assert sweep_records(remote) == sweep_records(run_sweep(tables, batch_size=100))


def store_records(db: Path) -> list[dict[str, Any]]:
    with ResultsStore(db) as store:
        return store.records()


def test_two_concurrent_sweeps_cost_each_plan_once(tables: list[PlanTable], tmp_path: Path) -> None:
    # Two sweeps into one store at once, in threads (processes: the test below): each
    # claims a batch before costing it, so together they cost every plan exactly once, and
    # each ends with every plan's figures.
    db = tmp_path / "shared.sqlite"
    costed: list[int] = []
    results: dict[str, list[Evaluated]] = {}
    lock = threading.Lock()

    def counting(batch: PlanTable) -> Evaluated:
        with lock:
            costed.append(len(batch))
        time.sleep(0.01)  # let the other sweep interleave
        return evaluate_table(batch)

    errors: list[BaseException] = []

    def sweep(name: str) -> None:
        try:
            with ResultsStore(db) as store:
                results[name] = run_sweep(tables, evaluate=counting, store=store, batch_size=25)
        except BaseException as exc:  # reported below, not lost in the thread
            errors.append(exc)

    ResultsStore(db).close()  # create the schema once, before both open it
    threads = [threading.Thread(target=sweep, args=(n,)) for n in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors
    assert sum(costed) == len(tables[0])
    assert sweep_records(results["a"]) == sweep_records(results["b"])
    with ResultsStore(db) as store:
        assert store.count() == len(tables[0])


_SWEEPER = """
import json, os, sys, time
from pathlib import Path
import numpy as np
from superscale.hardware.spec import Cluster
from superscale.search.evaluate import base_digest, evaluate_table, plan_keys_of
from superscale.search.executors import run_sweep
from superscale.search.space import enumerate_plans
from superscale.search.store import ResultsStore

scenario, db, log, go = json.loads(sys.argv[1]), sys.argv[2], sys.argv[3], Path(sys.argv[4])
cluster = Cluster.model_validate(scenario["cluster"])
table = enumerate_plans(scenario, clusters=[cluster]).tables[0].take(np.arange(400))

def costing(batch):
    keys = plan_keys_of(batch.parallels(), base_digest(batch.base))
    with open(log, "a") as f:  # one O_APPEND write a batch: the two logs never mix
        f.write("".join(f"{os.getpid()} {k}" + chr(10) for k in keys))
    time.sleep(0.02)  # let the other sweep interleave
    return evaluate_table(batch)

while not go.exists():
    time.sleep(0.01)
with ResultsStore(db) as store:
    run_sweep([table], evaluate=costing, store=store, batch_size=25)
"""


def test_two_sweep_processes_cost_each_plan_once(
    tiny_scenario_dict: dict[str, Any], tables: list[PlanTable], tmp_path: Path
) -> None:
    # Two processes sweep into one store at once, started together: the claims split the
    # work, so the log of plans each costed holds every plan exactly once.
    db, log, go = tmp_path / "shared.sqlite", tmp_path / "costed.log", tmp_path / "go"
    script = tmp_path / "sweeper.py"
    script.write_text(_SWEEPER)
    ResultsStore(db).close()  # the schema exists before both open it
    args = [sys.executable, str(script), json.dumps(tiny_scenario_dict), str(db), str(log)]
    procs = [subprocess.Popen([*args, str(go)], stderr=subprocess.PIPE) for _ in range(2)]
    try:
        time.sleep(1.0)  # both import and enumerate, then wait for the go
        go.touch()
        start = time.monotonic()
        errs = [p.communicate(timeout=120)[1] for p in procs]
        wall_s = time.monotonic() - start
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    assert [p.returncode for p in procs] == [0, 0], b"".join(errs).decode()
    lines = [line.split() for line in log.read_text().splitlines()]
    costed = [key for _, key in lines]
    assert len({pid for pid, _ in lines}) == 2  # both did part of the work
    assert len(costed) == len(tables[0])  # together: each plan once
    assert sorted(costed) == sorted(table_keys(tables[0]))
    assert wall_s < 60
    with ResultsStore(db) as store:
        assert store.count() == len(tables[0])
        assert sorted(r["key"] for r in store.records()) == sorted(costed)


def _session(pid: int) -> list[int]:
    """Processes (other than zombies) whose session is `pid`'s, from /proc."""
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        if fields[0] != "Z" and int(fields[3]) == pid:
            out.append(int(entry.name))
    return out


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc (Linux only)")
@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGKILL], ids=["SIGTERM", "SIGKILL"])
def test_a_killed_sweep_leaves_no_process(how: signal.Signals, tmp_path: Path) -> None:
    # A `--workers 2` sweep long enough to be killed mid-way, in a session of its own so
    # every process it starts (forkserver, resource tracker, workers) can be found.
    scenario = Path(__file__).resolve().parents[2] / "examples" / "llama3-70b-64xh100.yaml"
    args = [sys.executable, "-m", "superscale.cli", "search", str(scenario)]
    args += ["--gpus", "64..512", "--workers", "2", "--batch-size", "256", "--json"]
    proc = subprocess.Popen(
        args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True
    )
    try:
        deadline = time.monotonic() + 60
        while len(_session(proc.pid)) < 4 and time.monotonic() < deadline:
            time.sleep(0.1)  # the parent, forkserver, resource tracker and workers
        assert proc.poll() is None, "the sweep ended before it could be killed"
        assert len(_session(proc.pid)) >= 4, "the workers never started"
        proc.send_signal(how)
        _, err = proc.communicate(timeout=30)  # EOF: nothing else holds the pipes
        deadline = time.monotonic() + 15
        while _session(proc.pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert _session(proc.pid) == []
        if how == signal.SIGTERM:
            assert b"Traceback" not in err and b"leaked semaphore" not in err
    finally:
        for pid in _session(proc.pid):
            os.kill(pid, signal.SIGKILL)
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_a_signal_during_a_submit_is_held_until_it_returns() -> None:
    # The signal is caught inside the section (not raised there, where it would cut a
    # forkserver handshake in half) and handed to the real handler once it is left,
    # even when something lifted a signal mask or it came from another thread.
    seen: list[int] = []
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: seen.append(signum))
    try:
        with executors._termination_deferred():
            # What the resource tracker does when the first spawn starts it.
            signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM, signal.SIGINT})
            signal.raise_signal(signal.SIGTERM)
            other = threading.Thread(target=os.kill, args=(os.getpid(), signal.SIGTERM))
            other.start()
            other.join()
            time.sleep(0.05)  # let the interpreter run the Python-level handler
            assert seen == []
        assert seen == [signal.SIGTERM]  # once: a held signal is a flag, not a queue
        signal.raise_signal(signal.SIGTERM)
        assert seen == [signal.SIGTERM, signal.SIGTERM]  # the real handler is back
    finally:
        signal.signal(signal.SIGTERM, previous)
