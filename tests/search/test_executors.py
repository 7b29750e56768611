"""Sweeps give the same records whatever the backend, and resume from the store."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Any

import pytest

from superscale.errors import SpecError
from superscale.hardware.spec import Cluster
from superscale.search.evaluate import evaluate_batch, plan_key
from superscale.search.executors import plan_keys, run_sweep
from superscale.search.space import enumerate_plans
from superscale.search.store import ResultsStore


@pytest.fixture
def candidates(tiny_scenario_dict: dict[str, Any]) -> list[dict[str, Any]]:
    cluster = Cluster.model_validate(tiny_scenario_dict["cluster"])
    found = enumerate_plans(tiny_scenario_dict, clusters=[cluster]).candidates
    return found[:400]


def test_plan_keys_match_plan_key(candidates: list[dict[str, Any]]) -> None:
    assert plan_keys(candidates[:50]) == [plan_key(c) for c in candidates[:50]]


def test_two_workers_match_one(candidates: list[dict[str, Any]]) -> None:
    one = run_sweep(candidates, batch_size=64)
    two = run_sweep(candidates, workers=2, batch_size=64)
    assert len(one) == len(candidates)
    assert [r["key"] for r in one] == sorted(plan_keys(candidates))
    assert one == two


def test_resume_evaluates_only_missing(candidates: list[dict[str, Any]], tmp_path: Path) -> None:
    db = tmp_path / "sweep.sqlite"
    calls: list[int] = []

    def dies_after_two(batch: list[dict[str, Any]]) -> list[dict[str, Any]]:
        if len(calls) == 2:
            raise KeyboardInterrupt  # the sweep is stopped between batches
        calls.append(len(batch))
        return evaluate_batch(batch)

    with ResultsStore(db) as store, pytest.raises(KeyboardInterrupt):
        run_sweep(candidates, evaluate=dies_after_two, store=store, batch_size=50)
    seen: list[str] = []

    def counting(batch: list[dict[str, Any]]) -> list[dict[str, Any]]:
        seen.extend(plan_keys(batch))
        return evaluate_batch(batch)

    progress: list[tuple[int, int]] = []
    with ResultsStore(db) as store:
        assert store.count() == 100
        stored = {r["key"] for r in store.records()}
        records = run_sweep(
            candidates,
            evaluate=counting,
            store=store,
            batch_size=50,
            progress=lambda done, total: progress.append((done, total)),
        )
        assert store.count() == len(candidates)
    assert len(seen) == len(candidates) - 100
    assert not stored & set(seen)
    assert progress[0] == (0, len(candidates) - 100)
    assert progress[-1] == (len(candidates) - 100, len(candidates) - 100)
    assert records == run_sweep(candidates, batch_size=50)


def test_bad_options(candidates: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(SpecError, match="unknown backend"):
        run_sweep(candidates, backend="slurm")
    with pytest.raises(SpecError, match="workers"):
        run_sweep(candidates, workers=0)
    with pytest.raises(SpecError, match="needs --backend ray"):
        run_sweep(candidates, address="ray://head:10001")
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now raises ImportError
    with pytest.raises(SpecError, match=r"superscale\[ray\]"):
        run_sweep(candidates, backend="ray")


@pytest.mark.skipif(importlib.util.find_spec("ray") is None, reason="ray is not installed")
def test_ray_matches_local(candidates: list[dict[str, Any]], tmp_path: Path) -> None:
    import ray

    ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False)
    try:
        with ResultsStore(tmp_path / "ray.sqlite") as store:
            remote = run_sweep(candidates, backend="ray", store=store, batch_size=100)
            assert store.count() == len(candidates)
    finally:
        ray.shutdown()
    assert remote == run_sweep(candidates, batch_size=100)
