"""A whole plan search: clusters → candidates → sweep → top-k refined → Pareto front.

The clusters are the scenario's own, or each of `systems` at each power-of-two GPU count
of a range that is a multiple of the system's GPUs. Candidates are enumerated with the
pruning rules of `space.py`, evaluated with the analytical engine (`executors.run_sweep`,
optionally into a resumable `ResultsStore`), and the k fastest plans that fit are
re-simulated with the event engine and re-ranked by it (both figures are reported). The
Pareto front keeps, for each GPU count, the fastest fitting plan, and only the counts where
throughput still improves on every smaller count.
"""

from __future__ import annotations

import json
import re
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import ValidationError

from superscale.errors import SpecError
from superscale.hardware.catalog import clusters as cluster_catalog
from superscale.hardware.catalog import systems as system_catalog
from superscale.hardware.spec import Cluster, ScaleOut, System
from superscale.parallelism.plan import resolve
from superscale.scenario import load_scenario
from superscale.search import evaluate as _evaluate
from superscale.search.evaluate import cluster_label, evaluate_one
from superscale.search.executors import DEFAULT_BATCH_SIZE, Evaluator, Progress, run_sweep
from superscale.search.space import Limits, enumerate_plans
from superscale.search.store import ResultsStore, scenario_key
from superscale.spec import spec_error_from

DOES_NOT_FIT = "does not fit memory"
_RANGE = re.compile(r"^\s*(\d+)\s*(?:\.\.\s*(\d+)\s*)?$")
_REASON_WORDS = 6


@dataclass(frozen=True, slots=True, kw_only=True)
class SearchResult:
    """What a search found, and what it cost.

    `evaluated` counts every record of this search (stored ones included); `evaluated_now`
    the plans costed by this run and `reused` those read back from the results store.
    `plans_per_s` is `evaluated_now` over the sweep's wall time.
    """

    clusters: tuple[str, ...]
    candidates: int
    pruned: dict[str, int]
    evaluated: int
    evaluated_now: int
    reused: int
    fits: int
    top: tuple[dict[str, Any], ...]
    pareto: tuple[dict[str, Any], ...]
    wall_s: float
    sweep_s: float
    plans_per_s: float
    notes: tuple[str, ...] = ()
    db: str | None = None

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["clusters"] = list(self.clusters)
        data["top"] = list(self.top)
        data["pareto"] = list(self.pareto)
        data["notes"] = list(self.notes)
        return data


def parse_gpu_range(text: str) -> tuple[int, int]:
    """`"256..4096"` → (256, 4096); `"512"` → (512, 512).

    Raises:
        SpecError: not `N` or `A..B` with 1 <= A <= B.
    """
    match = _RANGE.match(text)
    if not match:
        raise SpecError(f"--gpus: expected N or A..B (e.g. 256..4096), got '{text}'")
    lo = int(match.group(1))
    hi = int(match.group(2) or lo)
    if lo < 1 or hi < lo:
        raise SpecError(f"--gpus: expected 1 <= A <= B in A..B, got '{text}'")
    return lo, hi


def _powers_of_two_between(lo: int, hi: int) -> list[int]:
    out, x = [], 1
    while x <= hi:
        if x >= lo:
            out.append(x)
        x *= 2
    return out


def _scenario_cluster(base: dict[str, Any]) -> Cluster | None:
    value = base.get("cluster")
    if value is None:
        return None
    if isinstance(value, str):
        return cluster_catalog().get(value)
    try:
        return Cluster.model_validate(value)
    except ValidationError as exc:
        raise spec_error_from(exc, prefix="cluster") from None


def build_clusters(
    base: dict[str, Any],
    *,
    gpus: str | None = None,
    systems: Sequence[str] | None = None,
) -> tuple[list[Cluster], list[str]]:
    """The clusters to search, and notes on systems the GPU range could not use.

    Args:
        base: the scenario mapping; its cluster is the default, and its scale-out network
            settings carry over (the NIC type only to the same system).
        gpus: `N` or `A..B`: powers of two in the range that are multiples of each
            system's GPUs (None: the scenario cluster's GPU count).
        systems: catalog system names (None: the scenario cluster's system).

    Raises:
        SpecError: no cluster to search, an unknown system, a bad range, or no usable count.
    """
    own = _scenario_cluster(base)
    chosen: list[System] = []
    if own is None and (gpus is None or not systems):
        raise SpecError("a search needs the scenario's cluster section, or --systems and --gpus")
    if systems:
        chosen = [system_catalog().get(name.strip()) for name in systems if name.strip()]
    elif own is not None:
        if gpus is None:
            return [own], []
        chosen = [own.system]
    if not chosen:
        raise SpecError("--systems: no system named")
    if gpus is not None:
        lo, hi = parse_gpu_range(gpus)
        counts = _powers_of_two_between(lo, hi)
        where = f"--gpus {gpus}"
    else:
        assert own is not None
        counts = [own.gpus]
        where = f"the scenario's {own.gpus} GPUs"
    out: list[Cluster] = []
    notes: list[str] = []
    for system in {s.name: s for s in chosen}.values():
        usable = [n for n in counts if n % system.gpus == 0]
        if not usable:
            notes.append(
                f"{system.name}: no GPU count in {where} is a power-of-two multiple of its "
                f"{system.gpus} GPUs; skipped"
            )
            continue
        scale_out = ScaleOut()
        if own is not None:
            scale_out = own.scale_out
            if system.name != own.system.name:
                scale_out = scale_out.model_copy(update={"network": None})
        out.extend(
            Cluster(system=system, count=n // system.gpus, scale_out=scale_out) for n in usable
        )
    if not out:
        raise SpecError("; ".join(notes))
    return out, notes


def prune_reason(record: dict[str, Any]) -> str | None:
    """Why an evaluated plan drops out: its error's first words, or not fitting memory."""
    error = record.get("error")
    if error:
        words = str(error).split("\n", 1)[0].split()[:_REASON_WORDS]
        return " ".join(words).rstrip(":,;.")
    if not record.get("fits"):
        return DOES_NOT_FIT
    return None


def pareto_front(records: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The fastest fitting plan per GPU count, keeping counts where throughput improves."""
    best: dict[int, dict[str, Any]] = {}
    for r in records:
        if not r.get("fits") or r.get("tokens_per_s") is None or r.get("gpus") is None:
            continue
        held = best.get(r["gpus"])
        if held is None or _rank(r) < _rank(held):
            best[r["gpus"]] = r
    front: list[dict[str, Any]] = []
    for n in sorted(best):
        r = best[n]
        if front and r["tokens_per_s"] <= front[-1]["tokens_per_s"]:
            continue
        front.append(
            {
                "engine": "analytical",
                "gpus": n,
                "tokens_per_s": r["tokens_per_s"],
                "tokens_per_s_per_gpu": r["tokens_per_s_per_gpu"],
                "step_time_s": r["step_time_s"],
                "mfu": r["mfu"],
                "cluster": r["cluster"],
                "parallel": r["parallel"],
                "key": r["key"],
            }
        )
    return front


def _rank(r: dict[str, Any]) -> tuple[float, float, str]:
    step = r.get("step_time_s")
    return (-float(r["tokens_per_s"]), float("inf") if step is None else step, str(r["key"]))


def placement(candidate: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Where each parallel group of more than one GPU lands (`GroupPlacement.describe`)."""
    scenario = load_scenario(candidate)
    plan = resolve(scenario)
    out: dict[str, dict[str, Any]] = {}
    for kind, group in plan.groups.items():
        if group.size <= 1 or (kind == "edp" and plan.ep == 1):
            continue
        out[kind] = {
            "size": group.size,
            "level": group.level,
            "where": group.describe(scenario.cluster),
        }
    return out


def refine(record: dict[str, Any], candidate: dict[str, Any]) -> dict[str, Any]:
    """A top record with the event engine's figures and its groups' placement added."""
    event = evaluate_one(candidate, engine="event")
    return {
        **record,
        "event": {
            "step_time_s": event["step_time_s"],
            "tokens_per_s": event["tokens_per_s"],
            "mfu": event["mfu"],
            "fits": event["fits"],
            "error": event["error"],
        },
        "groups": placement(candidate),
    }


def _refined_rank(r: dict[str, Any]) -> tuple[float, float, float, str]:
    event = r["event"]["tokens_per_s"]
    return (float("inf") if event is None else -float(event), *_rank(r))


def _usable(e: _evaluate.Evaluated) -> np.ndarray:
    """Rows of `e` that were costed and fit."""
    if e.error is not None:
        return np.zeros(len(e.table), dtype=bool)
    return np.asarray(e.costed & e.fits & np.isfinite(e.tokens_per_s), dtype=bool)


def _count_pruned(results: Sequence[_evaluate.Evaluated], pruned: Counter[str]) -> None:
    """Add each result's plans that drop out to `pruned`, by reason."""
    memory = prune_reason({"error": _evaluate.DOES_NOT_FIT}) or DOES_NOT_FIT
    for e in results:
        if e.error is not None:
            pruned[prune_reason({"error": e.error}) or DOES_NOT_FIT] += len(e.table)
            continue
        for reason, count in (
            (memory, (~e.costed).sum()),  # pruned before costing
            (DOES_NOT_FIT, (e.costed & ~e.fits).sum()),  # costed anyway (no pruning)
        ):
            if count:
                pruned[reason] += int(count)


def _tie(rate: float) -> float:
    """Throughputs equal to 9 significant digits are the same figure (ties)."""
    return float(f"{rate:.9g}")


def _top_records(results: Sequence[_evaluate.Evaluated], k: int) -> list[dict[str, Any]]:
    """The k best fitting plans by `_rank`, ties collapsed: plans of one cluster with the
    same throughput (e.g. recompute none and selective when both fit and neither costs
    time) are one entry, the best by `_rank`, with `ties` counting the others. Records
    are built only for the rows at or above the k-th best distinct throughput."""
    rates = [np.where(_usable(e), e.tokens_per_s, -np.inf) for e in results]
    every = np.concatenate(rates) if rates else np.zeros(0)
    finite = every[np.isfinite(every)]
    if not len(finite):
        return []
    distinct = np.unique(np.array([_tie(x) for x in np.sort(finite)[::-1][: 64 * k]]))[::-1]
    threshold = distinct[:k][-1] * (1 - 1e-8)  # below the rounding of _tie
    records = [
        r
        for e, rate in zip(results, rates, strict=True)
        for r in e.records(np.flatnonzero(rate >= threshold))
    ]
    groups: dict[tuple[str, float], list[dict[str, Any]]] = {}
    for r in sorted(records, key=_rank):
        groups.setdefault((r["cluster"], _tie(r["tokens_per_s"])), []).append(r)
    best = [{**members[0], "ties": len(members) - 1} for members in groups.values()]
    return sorted(best, key=_rank)[:k]


def _best_of_table(e: _evaluate.Evaluated) -> list[dict[str, Any]]:
    """Records of the fastest fitting plans of one table (ties kept; `pareto_front` picks)."""
    usable = _usable(e)
    if not usable.any():
        return []
    rate = np.where(usable, e.tokens_per_s, -np.inf)
    return e.records(np.flatnonzero(rate == rate.max()))


def run_search(
    base: dict[str, Any],
    *,
    gpus: str | None = None,
    systems: Sequence[str] | None = None,
    top: int = 10,
    workers: int = 1,
    backend: str = "local",
    address: str | None = None,
    db: str | Path | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    refine_top: bool = True,
    limits: Limits | None = None,
    evaluate: Evaluator | None = None,
    progress: Progress | None = None,
    max_plans: int | None = None,
) -> SearchResult:
    """Find the fastest plans that fit for a scenario (see the module docstring).

    Args:
        base: scenario mapping (model, training, optionally cluster; its parallel section
            is replaced by the search).
        gpus, systems: the clusters to search (`build_clusters`).
        top: how many of the fastest fitting plans to report and refine.
        workers, backend, address, batch_size, progress: as `run_sweep`.
        db: results store path (created if missing; refused if it holds another scenario).
        refine_top: re-simulate the top plans with the event engine.
        limits: bounds of the enumeration.
        evaluate: table evaluator (default `evaluate.evaluate_table`).
        max_plans: refuse a search of more valid plans than this, before costing any
            (None: no cap).

    Returns:
        A `SearchResult`; times in seconds.

    Raises:
        SpecError: bad input (see `build_clusters`, `run_sweep`, `ResultsStore`), or more
            plans than `max_plans`.
    """
    start = time.perf_counter()
    if top < 1:
        raise SpecError(f"--top must be >= 1, got {top}")
    cluster_list, notes = build_clusters(base, gpus=gpus, systems=systems)
    enumeration = enumerate_plans(base, clusters=cluster_list, limits=limits)
    if max_plans is not None and enumeration.plans > max_plans:
        raise SpecError(
            f"search: {enumeration.plans:,} valid plans on {len(cluster_list)} cluster"
            f"{'s' if len(cluster_list) != 1 else ''} exceed the cap of {max_plans:,}; narrow "
            "--gpus or --systems, or raise the cap with --max-plans N"
        )
    tables = {cluster_label(t.base): t for t in enumeration.tables}
    store = None
    if db is not None:
        store = ResultsStore(db, scenario_key=scenario_key(base))
        if store.meta("scenario") is None:
            shown = {k: v for k, v in base.items() if k not in {"cluster", "parallel"}}
            store.set_meta("scenario", json.dumps(shown, sort_keys=True, default=str))
    todo: list[int] = []  # the plans to evaluate now, as the sweep's first report gives

    def report(done: int, total: int) -> None:
        if not todo:
            todo.append(total)
        if progress is not None:
            progress(done, total)

    try:
        sweep_start = time.perf_counter()
        results = run_sweep(
            list(tables.values()),
            evaluate=evaluate or _evaluate.evaluate_table,
            workers=workers,
            backend=backend,
            address=address,
            store=store,
            batch_size=batch_size,
            progress=report,
        )
        sweep_s = time.perf_counter() - sweep_start
    finally:
        if store is not None:
            store.close()
    pruned: Counter[str] = Counter({k: v for k, v in enumeration.pruned.items() if v})
    _count_pruned(results, pruned)
    fits = sum(int(_usable(e).sum()) for e in results)
    best = _top_records(results, top)
    if refine_top:
        best = sorted(
            (refine(r, {**tables[r["cluster"]].base, "parallel": r["parallel"]}) for r in best),
            key=_refined_rank,
        )
    evaluated_now = todo[0] if todo else 0
    evaluated = sum(len(e.table) for e in results)
    return SearchResult(
        clusters=tuple(cluster_label({"cluster": c.model_dump(mode="json")}) for c in cluster_list),
        candidates=enumeration.plans,
        pruned=dict(pruned.most_common()),
        evaluated=evaluated,
        evaluated_now=evaluated_now,
        reused=evaluated - evaluated_now,
        fits=fits,
        top=tuple(best),
        pareto=tuple(pareto_front([r for e in results for r in _best_of_table(e)])),
        wall_s=time.perf_counter() - start,
        sweep_s=sweep_s,
        plans_per_s=evaluated_now / sweep_s if sweep_s > 0 else 0.0,
        notes=tuple(notes),
        db=None if db is None else str(db),
    )
