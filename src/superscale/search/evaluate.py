"""Evaluate candidate plans into records: the search's unit of work.

`evaluate_batch(candidates)` takes scenario mappings (from `space.enumerate_plans`) and
returns one record each: the plan, step time, throughput, MFU, peak memory and whether it
fits, or the error that made it infeasible. Records are JSON-serializable and keyed by
`plan_key`, a hash of the candidate scenario, so a results store can resume a sweep.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

import numpy as np

from superscale.collectives.tuner import CommModel
from superscale.errors import InfeasiblePlan, SpecError
from superscale.parallelism.plan import batch_plan
from superscale.pipeline import simulate
from superscale.scenario import Scenario, load_scenario
from superscale.search.space import COLUMNS, RECOMPUTE, SCHEDULES, PlanTable
from superscale.simulate.analytical import combine, stage_passes, stage_sync, stage_time
from superscale.training.lower import lower
from superscale.training.memory import estimate_memory

DOES_NOT_FIT = "does not fit in memory"  # the error of a plan pruned for memory
RECORD_KEYS = (
    "key",
    "cluster",
    "gpus",
    "parallel",
    "step_time_s",
    "tokens_per_s",
    "tokens_per_s_per_gpu",
    "mfu",
    "peak_gib_per_gpu",
    "fits",
    "error",
)


def plan_key(
    candidate: dict[str, Any],
    *,
    base_digest: str | None = None,
    fields: tuple[str, ...] | None = None,
) -> str:
    """Stable hash of a candidate scenario: of its plan fields (sorted, `name=value`), and of
    the rest (model, cluster, training), which a sweep hashes once (`base_digest`; `fields`
    is the sorted plan field names when the caller already knows them)."""
    if base_digest is None:
        base_digest = _digest({k: v for k, v in candidate.items() if k != "parallel"})
    par = candidate["parallel"]
    names = fields if fields is not None else tuple(sorted(par))
    text = base_digest + "|" + "|".join([f"{k}={par[k]!r}" for k in names])
    return hashlib.sha256(text.encode()).hexdigest()


def base_digest(candidate: dict[str, Any]) -> str:
    """Hash of a candidate's scenario without its plan (model, cluster, training): the part
    every candidate of one sweep shares, for `plan_key(..., base_digest=...)`."""
    return _digest({k: v for k, v in candidate.items() if k != "parallel"})


def _digest(data: Any) -> str:
    text = json.dumps(data, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def cluster_label(candidate: dict[str, Any]) -> str:
    cluster = candidate["cluster"]
    if isinstance(cluster, str):
        return cluster
    system = cluster["system"]
    name = system if isinstance(system, str) else system.get("name", "inline")
    return f"{cluster.get('count', 1)}x {name}"


def evaluate_one(candidate: dict[str, Any], *, engine: str = "analytical") -> dict[str, Any]:
    """One candidate with the scalar pipeline (the reference the batch path must match)."""
    base = {
        "key": plan_key(candidate),
        "cluster": cluster_label(candidate),
        "parallel": candidate["parallel"],
    }
    try:
        result = simulate(load_scenario(candidate), engine=engine).to_json()
    except (SpecError, InfeasiblePlan) as exc:
        return {
            **base,
            "gpus": None,
            "step_time_s": None,
            "tokens_per_s": None,
            "tokens_per_s_per_gpu": None,
            "mfu": None,
            "peak_gib_per_gpu": None,
            "fits": False,
            "error": str(exc),
        }
    return {
        **base,
        "gpus": result["gpus"],
        "step_time_s": result["step_time_s"],
        "tokens_per_s": result["tokens_per_s"],
        "tokens_per_s_per_gpu": result["tokens_per_s_per_gpu"],
        "mfu": result["mfu"],
        "peak_gib_per_gpu": result["memory"]["peak_gib_per_gpu"],
        "fits": result["fits"],
        "error": None,
    }


class _ModelCache(dict[str, CommModel]):
    """Routed comm models by cluster, kept across batches (routing a 16k-GPU layout takes
    milliseconds; a sweep reuses a few hundred layouts). Bounded: a memo, not state."""

    LIMIT = 8

    def setdefault(self, key: str, default: CommModel) -> CommModel:  # type: ignore[override]
        if key not in self and len(self) >= self.LIMIT:
            self.pop(next(iter(self)))
        return super().setdefault(key, default)


_COMM_MODELS = _ModelCache()
# the plan fields a batch plan takes as arrays (pp and virtual stages are per batch)
_FIELDS = ("tp", "cp", "ep", "micro_batch", "zero", "recompute", "sequence_parallel", "schedule")


@dataclass(frozen=True, slots=True, kw_only=True)
class Evaluated:
    """A table's plans after evaluation, as columns (NaN where not costed): what a search
    ranks and keeps; `records` turns the rows it reports or stores into JSON records."""

    table: PlanTable
    gpus: int | None
    step_time_s: np.ndarray
    tokens_per_s: np.ndarray
    mfu: np.ndarray
    peak_bytes: np.ndarray
    fits: np.ndarray
    costed: np.ndarray  # False: pruned for memory before costing, or the scenario failed
    error: str | None = None  # why every plan failed (the scenario itself is invalid)

    def records(
        self, rows: Any = None, *, keys: list[str] | None = None, digest: str | None = None
    ) -> list[dict[str, Any]]:
        """JSON records of `rows` (default: all), keyed as `plan_key` keys them (or by
        `keys`, one per row, when the caller has them already)."""
        table = self.table
        picked = range(len(table)) if rows is None else np.asarray(rows).tolist()
        digest = digest or base_digest({**table.base, "parallel": None})
        label = cluster_label(table.base)
        names = tuple(sorted(table.parallel(0))) if len(table) else ()
        out = []
        for n, i in enumerate(picked):
            par = table.parallel(i)
            key = keys[n] if keys is not None else None
            record: dict[str, Any] = {
                "key": key or plan_key({"parallel": par}, base_digest=digest, fields=names),
                "cluster": label,
                "parallel": par,
                "gpus": self.gpus,
                "step_time_s": None,
                "tokens_per_s": None,
                "tokens_per_s_per_gpu": None,
                "mfu": None,
                "peak_gib_per_gpu": None,
                "fits": bool(self.fits[i]),
                "error": self.error,
            }
            if self.error is None:
                record["peak_gib_per_gpu"] = float(self.peak_bytes[i]) / 2**30
                if self.costed[i]:
                    t, rate = float(self.step_time_s[i]), float(self.tokens_per_s[i])
                    record["step_time_s"] = t
                    record["tokens_per_s"] = rate
                    record["tokens_per_s_per_gpu"] = rate / self.gpus if self.gpus else None
                    record["mfu"] = float(self.mfu[i])
                else:
                    record["error"] = DOES_NOT_FIT
            out.append(record)
        return out


def evaluate_batch(
    candidates: list[dict[str, Any]], *, prune_memory: bool = True
) -> list[dict[str, Any]]:
    """Records for a batch of candidate scenario mappings (order kept): `evaluate_table`
    over the tables they form (candidates sharing a scenario share one table). Candidates
    must be valid plans, as `space.enumerate_plans` yields them."""
    groups: dict[tuple[int, ...], list[int]] = {}
    for i, c in enumerate(candidates):
        ids = tuple([id(v) for k, v in c.items() if k != "parallel"])
        groups.setdefault(ids, []).append(i)
    records: list[dict[str, Any] | None] = [None] * len(candidates)
    for members in groups.values():
        first = candidates[members[0]]
        base = {k: v for k, v in first.items() if k != "parallel"}
        digest = base_digest(first)
        stack = {k: v for k, v in first["parallel"].items() if k not in COLUMNS}
        rows = [_row(candidates[i]["parallel"]) for i in members]
        table = PlanTable.from_rows(base, stack, rows)
        done = evaluate_table(table, prune_memory=prune_memory)
        for i, record in zip(members, done.records(digest=digest), strict=True):
            # the candidate's own spelling of its plan (defaults left out) keys its record
            record["parallel"] = candidates[i]["parallel"]
            record["key"] = plan_key(candidates[i], base_digest=digest)
            records[i] = record
    return [r for r in records if r is not None]


def _row(par: dict[str, Any]) -> tuple[int, ...]:
    return (
        par.get("tp", 1),
        par["pp"],
        par.get("cp", 1),
        par.get("ep", 1),
        par.get("micro_batch", 1),
        par.get("virtual_stages", 1),
        SCHEDULES.index(par.get("schedule", "1f1b")),
        par.get("zero", 1),
        RECOMPUTE.index(par.get("recompute", "none")),
        int(par.get("sequence_parallel", True)),
    )


def evaluate_table(table: PlanTable, *, prune_memory: bool = True) -> Evaluated:
    """Evaluate every plan of `table` with the vectorized analytical engine.

    Plans sharing a pipeline shape (pp, virtual stages) are costed together, their other
    fields numpy arrays through the same cost code as `evaluate_one`. Memory comes first;
    with `prune_memory` the plans that do not fit are not costed. The work is factored by
    what each part depends on: forward and backward passes on the distinct (tp, cp, ep,
    micro-batch, recomputation, sequence parallelism, ZeRO-3) rows, the once-per-step
    gradient and optimizer work on the distinct (tp, cp, ep, ZeRO) rows, and only the
    pipeline formula on every plan; each row's arithmetic is the scalar path's.
    """
    n = len(table)
    nan = np.full(n, np.nan)
    try:
        scenario = load_scenario({**table.base, "parallel": table.parallel(0) if n else {}})
        training = scenario.require_training()
        peak_flops = scenario.cluster.chip.peak_flops(training.precision)
    except (SpecError, InfeasiblePlan) as exc:
        no = np.zeros(n, dtype=bool)
        return Evaluated(
            table=table,
            gpus=None,
            step_time_s=nan,
            tokens_per_s=nan,
            mfu=nan,
            peak_bytes=nan,
            fits=no,
            costed=no,
            error=str(exc),
        )
    cluster_key = json.dumps(table.base["cluster"], sort_keys=True, default=str)
    models = _COMM_MODELS
    comm = models.get(cluster_key) or models.setdefault(cluster_key, CommModel(scenario.cluster))
    cols = {name: table.values(name) for name in COLUMNS}
    peak = np.full(n, np.nan)
    step_s = np.full(n, np.nan)
    model_flops = np.full(n, np.nan)
    keep_all = np.zeros(n, dtype=bool)
    shapes = table.columns["pp"] * 1024 + table.columns["virtual_stages"]
    for shape in np.unique(shapes).tolist():
        rows = np.flatnonzero(shapes == shape)
        pp, v = divmod(shape, 1024)
        fields = {k: cols[k][rows] for k in _FIELDS}
        plan = batch_plan(
            scenario, pp=pp, virtual_stages=v, schedule=fields["schedule"], fields=fields
        )
        memory = estimate_memory(
            scenario, plan, lower(scenario, plan, virtual=False, passes=False, step=False)
        )
        peak[rows] = np.broadcast_to(memory.peak_bytes, rows.shape)
        keep = (
            peak[rows] <= scenario.cluster.chip.hbm_bytes
            if prune_memory
            else np.ones(len(rows), dtype=bool)
        )
        if not keep.any():
            continue
        sub = {k: v_[keep] for k, v_ in fields.items()}
        t, flops = _price(scenario, comm, training.precision, pp=pp, virtual_stages=v, fields=sub)
        kept = rows[keep]
        step_s[kept] = t
        model_flops[kept] = flops
        keep_all[kept] = True
    tokens = training.global_batch * training.seq_len
    rate = tokens / step_s
    return Evaluated(
        table=table,
        gpus=scenario.cluster.gpus,
        step_time_s=step_s,
        tokens_per_s=rate,
        mfu=model_flops / step_s / peak_flops,
        peak_bytes=peak,
        fits=peak <= scenario.cluster.chip.hbm_bytes,
        costed=keep_all,
    )


_PASS_FIELDS = ("tp", "cp", "ep", "micro_batch", "recompute", "sequence_parallel", "zero3")
_SYNC_FIELDS = ("tp", "cp", "ep", "zero")


def _price(
    scenario: Scenario,
    comm: CommModel,
    precision: str,
    *,
    pp: int,
    virtual_stages: int,
    fields: dict[str, np.ndarray],
) -> tuple[np.ndarray, np.ndarray]:
    """(step seconds, model FLOPs per GPU) of plans of one pipeline shape, factored as
    `evaluate_table` describes."""
    shape = {"pp": pp, "virtual_stages": virtual_stages}
    plan = batch_plan(scenario, schedule=fields["schedule"], fields=fields, **shape)
    zero3 = fields["zero"] == 3
    pass_rows, pass_inverse = _distinct({**fields, "zero3": zero3}, _PASS_FIELDS)
    pass_fields = {k: v[pass_rows] for k, v in fields.items()}
    # passes see ZeRO only through ZeRO-3's weight gathers; the schedule is applied later
    pass_fields["zero"] = np.where(zero3[pass_rows], 3, 0)
    pass_plan = batch_plan(scenario, schedule="1f1b", fields=pass_fields, **shape)
    pass_program = lower(scenario, pass_plan, virtual=False, step=False)
    sync_rows, sync_inverse = _distinct(fields, _SYNC_FIELDS)
    sync_fields = {k: v[sync_rows] for k, v in fields.items()}
    sync_plan = batch_plan(scenario, schedule="1f1b", fields=sync_fields, **shape)
    sync_program = lower(scenario, sync_plan, virtual=False, passes=False)
    stages = []
    for (stage, count), (twin, _) in zip(
        pass_program.distinct_stages(), sync_program.distinct_stages(), strict=True
    ):
        passes = stage_passes(stage, pass_plan, comm, precision).take(pass_inverse)
        sync = stage_sync(twin, sync_plan, comm, precision).take(sync_inverse)
        stages.append((stage_time(stage.index, passes, sync, plan.schedule), count))
    step = combine(stages, plan.micro_batches, plan)
    n = len(fields["tp"])
    return (
        np.broadcast_to(step.step_time_s, (n,)),
        np.broadcast_to(step.model_flops_per_gpu, (n,)),
    )


def _distinct(
    fields: dict[str, np.ndarray], names: tuple[str, ...]
) -> tuple[np.ndarray, np.ndarray]:
    """(first row of each distinct combination of `names`, each row's combination)."""
    code = np.zeros(len(fields[names[0]]), dtype=np.int64)
    for name in names:
        values, inverse = np.unique(fields[name], return_inverse=True)
        code = code * len(values) + inverse.ravel()
    _, first, inverse = np.unique(code, return_index=True, return_inverse=True)
    return first, inverse.ravel()
