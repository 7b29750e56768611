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
from superscale.parallelism.plan import Plan, batch_plan
from superscale.pipeline import simulate
from superscale.program.ops import Op
from superscale.scenario import Scenario, load_scenario
from superscale.search.space import COLUMNS, RECOMPUTE, SCHEDULES, PlanTable
from superscale.simulate.analytical import (
    PassSums,
    StagePasses,
    combine,
    pass_sums,
    passes_of,
    stage_sync,
    stage_time,
    sum_passes,
)
from superscale.training.lower import (
    LayerPieces,
    StageProgram,
    layer_pieces,
    lower,
    pipeline_send_ops,
    zero3_gather_ops,
)
from superscale.training.memory import estimate_memory

DOES_NOT_FIT = "does not fit in memory"  # the error of a plan pruned for memory


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


def plan_keys_of(parallels: list[dict[str, Any]], digest: str) -> list[str]:
    """`plan_key` of each of a table's parallel sections (same field names, one scenario
    whose `base_digest` is `digest`)."""
    names = tuple(sorted(parallels[0])) if parallels else ()
    return [plan_key({"parallel": par}, base_digest=digest, fields=names) for par in parallels]


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

    def setdefault(self, key: str, default: CommModel) -> CommModel:
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
        index = np.arange(len(table)) if rows is None else np.asarray(rows, dtype=np.int64)
        digest = digest or base_digest({**table.base, "parallel": None})
        label = cluster_label(table.base)
        pars = table.parallels(index)
        if keys is None:
            keys = plan_keys_of(pars, digest)
        fits, costed = self.fits[index].tolist(), self.costed[index].tolist()
        peak = self.peak_bytes[index].tolist()
        step, rate, mfu = (
            a[index].tolist() for a in (self.step_time_s, self.tokens_per_s, self.mfu)
        )
        out = []
        for n, par in enumerate(pars):
            record: dict[str, Any] = {
                "key": keys[n],
                "cluster": label,
                "parallel": par,
                "gpus": self.gpus,
                "step_time_s": None,
                "tokens_per_s": None,
                "tokens_per_s_per_gpu": None,
                "mfu": None,
                "peak_gib_per_gpu": None,
                "fits": bool(fits[n]),
                "error": self.error,
            }
            if self.error is None:
                record["peak_gib_per_gpu"] = peak[n] / 2**30
                if costed[n]:
                    record["step_time_s"] = step[n]
                    record["tokens_per_s"] = rate[n]
                    record["tokens_per_s_per_gpu"] = rate[n] / self.gpus if self.gpus else None
                    record["mfu"] = mfu[n]
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

    Plan fields are numpy arrays through the same cost code as `evaluate_one`. Memory comes
    first, per pipeline shape (pp, virtual stages); with `prune_memory` the plans that do
    not fit are not costed. The rest is factored by what each part depends on. One layer's
    ops (and the embedding's and output layer's) are priced once for all shapes, on the
    distinct (tp, cp, ep, micro-batch, recomputation, sequence parallelism) rows; each
    stage's passes are those sums times its layers (pass times are linear in the ops, and
    overlap is applied to the totals), plus its sends and ZeRO-3 gathers. Step work is
    priced on the distinct (tp, cp, ep, ZeRO) rows of a shape, and the pipeline formula on
    every plan.
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
    keep_all = np.zeros(n, dtype=bool)
    hbm = scenario.cluster.chip.hbm_bytes
    shapes = table.columns["pp"] * 1024 + table.columns["virtual_stages"]
    by_shape = [(s, np.flatnonzero(shapes == s)) for s in np.unique(shapes).tolist()]
    for shape, rows in by_shape:
        pp, v = divmod(shape, 1024)
        fields = {k: cols[k][rows] for k in _FIELDS}
        plan = batch_plan(
            scenario, pp=pp, virtual_stages=v, schedule=fields["schedule"], fields=fields
        )
        memory = estimate_memory(
            scenario, plan, lower(scenario, plan, virtual=False, passes=False, step=False)
        )
        peak[rows] = np.broadcast_to(memory.peak_bytes, rows.shape)
        keep_all[rows] = peak[rows] <= hbm if prune_memory else True
    step_s = np.full(n, np.nan)
    model_flops = np.full(n, np.nan)
    kept = np.flatnonzero(keep_all)
    if len(kept):
        # one layer's (and the head's and tail's) ops, priced once for every shape
        unit_rows, unit_of = _distinct({k: cols[k][kept] for k in _FIELDS}, _UNIT_FIELDS)
        unit_fields = {k: cols[k][kept[unit_rows]] for k in _FIELDS}
        unit_fields["zero"] = np.zeros_like(unit_fields["zero"])
        unit_plan = batch_plan(
            scenario, pp=1, virtual_stages=1, schedule="1f1b", fields=unit_fields
        )
        pieces = {
            name: pass_sums(ops, unit_plan, comm, training.precision)
            for name, ops in _pieces(layer_pieces(scenario, unit_plan)).items()
        }
        unit_index = np.full(n, -1)
        unit_index[kept] = unit_of
        for shape, rows in by_shape:
            rows = rows[keep_all[rows]]
            if not len(rows):
                continue
            pp, v = divmod(shape, 1024)
            parts = {name: sums.take(unit_index[rows]) for name, sums in pieces.items()}
            fields = {k: cols[k][rows] for k in _FIELDS}
            t, flops = _price(scenario, comm, training.precision, pp, v, fields, parts)
            step_s[rows] = t
            model_flops[rows] = flops
    tokens = training.global_batch * training.seq_len
    rate = tokens / step_s
    return Evaluated(
        table=table,
        gpus=scenario.cluster.gpus,
        step_time_s=step_s,
        tokens_per_s=rate,
        mfu=model_flops / step_s / peak_flops,
        peak_bytes=peak,
        fits=peak <= hbm,
        costed=keep_all,
    )


# what a layer's ops depend on; step work depends on these; sends on those
_UNIT_FIELDS = ("tp", "cp", "ep", "micro_batch", "recompute", "sequence_parallel")
_SYNC_FIELDS = ("tp", "cp", "ep", "zero")
_SEND_FIELDS = ("tp", "cp", "micro_batch", "sequence_parallel")


def _pieces(pieces: LayerPieces) -> dict[str, tuple[Op, ...]]:
    return {f: getattr(pieces, f) for f in LayerPieces.__dataclass_fields__}


def _price(
    scenario: Scenario,
    comm: CommModel,
    precision: str,
    pp: int,
    virtual_stages: int,
    fields: dict[str, np.ndarray],
    parts: dict[str, PassSums],
) -> tuple[np.ndarray, np.ndarray]:
    """(step seconds, model FLOPs per GPU) of plans of one pipeline shape: each distinct
    stage's passes composed from `parts` (its layers' sums, these plans' rows) with its
    sends and ZeRO-3 gathers; step work on the distinct (tp, cp, ep, ZeRO) rows; the
    pipeline formula on every plan."""
    shape = {"pp": pp, "virtual_stages": virtual_stages}
    plan = batch_plan(scenario, schedule=fields["schedule"], fields=fields, **shape)
    sync_rows, sync_of = _distinct(fields, _SYNC_FIELDS)
    sync_plan = batch_plan(
        scenario, schedule="1f1b", fields={k: v[sync_rows] for k, v in fields.items()}, **shape
    )
    # chunk programs too (v > 1): a rank's collectives overlap each chunk's compute apart
    sync_program = lower(scenario, sync_plan, passes=False)
    send = None
    if pp > 1:
        send_rows, send_of = _distinct(fields, _SEND_FIELDS)
        send_fields = {k: v[send_rows] for k, v in fields.items()}
        send_plan = batch_plan(scenario, schedule="1f1b", fields=send_fields, **shape)
        ops = pipeline_send_ops(scenario, send_plan, 1)
        send = pass_sums(ops, send_plan, comm, precision).take(send_of)
    stages = []
    for stage, count in sync_program.distinct_stages():
        if stage.chunks:
            chunks = [sync_program.virtual[c * pp + stage.index] for c in range(virtual_stages)]
            sends = 1
        else:
            chunks, sends = [stage], virtual_stages
        passes = sum_passes(
            [
                _chunk_passes(chunk, sync_plan, plan, sync_of, parts, send, sends, comm, precision)
                for chunk in chunks
            ]
        )
        sync = stage_sync(stage, sync_plan, comm, precision).take(sync_of)
        stages.append((stage_time(stage.index, passes, sync, plan.schedule), count))
    step = combine(stages, plan.micro_batches, plan)
    n = len(fields["tp"])
    return (
        np.broadcast_to(step.step_time_s, (n,)),
        np.broadcast_to(step.model_flops_per_gpu, (n,)),
    )


def _chunk_passes(
    chunk: StageProgram,
    sync_plan: Plan,
    plan: Plan,
    sync_of: np.ndarray,
    parts: dict[str, PassSums],
    send: PassSums | None,
    sends: int,
    comm: CommModel,
    precision: str,
) -> StagePasses:
    """One chunk's (or, with one chunk per rank, one stage's) passes, composed from its
    layers' sums in the lowering's op order, with its ZeRO-3 gathers and `sends` sends
    each way (none forward from the model's last chunk, none back from its first)."""
    _, _, first, last = chunk.signature
    gathers = zero3_gather_ops(chunk, sync_plan)
    forward = pass_sums(gathers, sync_plan, comm, precision).take(sync_of)
    regathers = zero3_gather_ops(chunk, sync_plan, backward=True)  # unless kept (FSDP2)
    backward = pass_sums(regathers, sync_plan, comm, precision).take(sync_of)
    # layers by kind: dense and MoE, each in the run's precision or kept in bf16
    bf16_moe, bf16_dense = chunk.bf16_moe_layers, chunk.bf16_layers - chunk.bf16_moe_layers
    n_dense, n_moe = chunk.layers - chunk.moe_layers, chunk.moe_layers
    kinds = (
        ("dense", n_dense - bf16_dense),
        ("dense_bf16", bf16_dense),
        ("moe", n_moe - bf16_moe),
        ("moe_bf16", bf16_moe),
    )
    if first:
        forward = forward + parts["head_fwd"]
    for name, n in kinds:
        if n:
            forward = forward + parts[f"{name}_fwd"].scaled(n)
            backward = backward + parts[f"{name}_recompute"].scaled(n)
    if last:
        forward = forward + parts["tail_fwd"]
        backward = backward + parts["tail_bwd"]
    for name, n in reversed(kinds):
        if n:
            backward = backward + parts[f"{name}_bwd"].scaled(n)
    if first:
        backward = backward + parts["head_bwd"]
    if send is not None:  # each chunk sends on, but the model's last (first) chunk
        if sends - last:
            forward = forward + send.scaled(sends - last)
        if sends - first:
            backward = backward + send.scaled(sends - first)
    return passes_of(forward, backward, plan)


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
