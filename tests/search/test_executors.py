"""Sweeps give the same records whatever the backend, and resume from the store."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from superscale.errors import SpecError
from superscale.hardware.spec import Cluster
from superscale.search.evaluate import Evaluated, evaluate_batch, evaluate_table, plan_key
from superscale.search.executors import run_sweep, sweep_records, table_keys
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


def test_resume_evaluates_only_missing(tables: list[PlanTable], tmp_path: Path) -> None:
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
        seen.extend(table_keys(batch))
        return evaluate_table(batch)

    progress: list[tuple[int, int]] = []
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
    assert len(seen) == n - 100
    assert not stored & set(seen)
    assert progress[0] == (0, n - 100)
    assert progress[-1] == (n - 100, n - 100)
    assert sweep_records(records) == sweep_records(run_sweep(tables, batch_size=50))
    assert sweep_records(records) == sorted(store_records(db), key=lambda r: r["key"])


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
