"""run_search ranks from columns: the same top plans, Pareto front and pruned counts as
ranking every plan's record would give."""

from __future__ import annotations

from collections import Counter
from typing import Any

from superscale.search.executors import run_sweep, sweep_records
from superscale.search.run import (
    _rank,
    _tie,
    build_clusters,
    pareto_front,
    prune_reason,
    run_search,
)
from superscale.search.space import enumerate_plans

BASE = {
    "model": "llama3-8b",
    "training": {"seq_len": 4096, "global_batch": 64},
    "parallel": {"tp_comm_overlap": True},
}


def _every_record(base: dict[str, Any], gpus: str) -> tuple[list[dict[str, Any]], Counter[str]]:
    clusters, _ = build_clusters(base, gpus=gpus, systems=["dgx-h100"])
    enumeration = enumerate_plans(base, clusters=clusters)
    records = sweep_records(run_sweep(enumeration.tables))
    pruned = Counter({k: v for k, v in enumeration.pruned.items() if v})
    pruned.update(r for r in map(prune_reason, records) if r is not None)
    return records, pruned


def test_search_ranks_like_every_record() -> None:
    result = run_search(
        BASE, gpus="8..32", systems=["dgx-h100"], top=7, refine_top=False, workers=1
    )
    records, pruned = _every_record(BASE, "8..32")
    fitting = sorted((r for r in records if prune_reason(r) is None), key=_rank)
    # equal throughput on one cluster is one entry, the best by _rank, counting the others
    groups: dict[tuple[str, float], list[dict[str, Any]]] = {}
    for r in fitting:
        groups.setdefault((r["cluster"], _tie(r["tokens_per_s"])), []).append(r)
    collapsed = [{**m[0], "ties": len(m) - 1} for m in groups.values()][:7]
    assert [r["key"] for r in result.top] == [r["key"] for r in collapsed]
    assert list(result.top) == collapsed
    assert result.fits == len(fitting)
    assert result.evaluated == len(records)
    assert result.pruned == dict(pruned)
    assert list(result.pareto) == pareto_front(records)
    assert len(result.pareto) >= 2
