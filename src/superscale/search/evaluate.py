"""Evaluate candidate plans into records: the search's unit of work.

`evaluate_batch(candidates)` takes scenario mappings (from `space.enumerate_plans`) and
returns one record each: the plan, step time, throughput, MFU, peak memory and whether it
fits, or the error that made it infeasible. Records are JSON-serializable and keyed by
`plan_key`, a hash of the candidate scenario, so a results store can resume a sweep.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import numpy as np

from superscale.collectives.tuner import CommModel
from superscale.errors import InfeasiblePlan, SpecError
from superscale.parallelism.plan import batch_plan
from superscale.pipeline import simulate
from superscale.scenario import load_scenario
from superscale.simulate.analytical import estimate_step
from superscale.training.lower import lower
from superscale.training.memory import estimate_memory

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


def evaluate_batch(
    candidates: list[dict[str, Any]], *, prune_memory: bool = True
) -> list[dict[str, Any]]:
    """Records for a batch of candidates (order kept), evaluated as numpy arrays.

    Candidates sharing a cluster and a pipeline shape (pp, virtual stages, schedule) are
    lowered once with their other plan fields as arrays, through the same cost code as
    `evaluate_one`. Memory is estimated first; with `prune_memory` the plans that do not fit
    are not costed (their record has `fits` False and the error "does not fit in memory").
    Candidates must be valid plans, as `space.enumerate_plans` yields them.
    """
    records: list[dict[str, Any] | None] = [None] * len(candidates)
    groups: dict[tuple[Any, ...], list[int]] = {}
    digests: dict[tuple[int, ...], str] = {}  # a sweep's candidates share these objects
    for i, c in enumerate(candidates):
        par = c["parallel"]
        ids = tuple([id(v) for k, v in c.items() if k != "parallel"])
        if ids not in digests:
            digests[ids] = _digest({k: v for k, v in c.items() if k != "parallel"})
        # schedules with the same pipeline shape lower alike: one batch, schedule an array
        pipe = (par["pp"], par.get("virtual_stages", 1), par.get("flash_attention", True))
        groups.setdefault((digests[ids], *pipe), []).append(i)
    models = _COMM_MODELS
    for (digest, *_), members in groups.items():
        group = [candidates[i] for i in members]
        results = _evaluate_group(group, models, prune_memory, base_digest=digest)
        for i, record in zip(members, results, strict=True):
            records[i] = record
    return [r for r in records if r is not None]


class _ModelCache(dict[str, CommModel]):
    """Routed comm models by cluster, kept across batches (routing a 16k-GPU layout takes
    milliseconds; a sweep reuses a few hundred layouts). Bounded: a memo, not state."""

    LIMIT = 8

    def setdefault(self, key: str, default: CommModel) -> CommModel:  # type: ignore[override]
        if key not in self and len(self) >= self.LIMIT:
            self.pop(next(iter(self)))
        return super().setdefault(key, default)


_COMM_MODELS = _ModelCache()

_FIELDS = ("tp", "cp", "ep", "micro_batch", "zero", "recompute", "sequence_parallel", "schedule")
_DEFAULTS = {
    "tp": 1,
    "cp": 1,
    "ep": 1,
    "micro_batch": 1,
    "zero": 1,
    "recompute": "none",
    "sequence_parallel": True,
    "schedule": "1f1b",
}


def _evaluate_group(
    group: list[dict[str, Any]],
    models: dict[str, CommModel],
    prune_memory: bool,
    *,
    base_digest: str,
) -> list[dict[str, Any]]:
    first = group[0]
    try:
        scenario = load_scenario(first)
        training = scenario.require_training()
        peak_flops = scenario.cluster.chip.peak_flops(training.precision)
    except (SpecError, InfeasiblePlan) as exc:
        return [_failed(c, str(exc), base_digest) for c in group]
    cluster_key = json.dumps(first["cluster"], sort_keys=True, default=str)
    comm = models.get(cluster_key) or models.setdefault(cluster_key, CommModel(scenario.cluster))
    par = first["parallel"]
    shape = {"pp": par["pp"], "virtual_stages": par.get("virtual_stages", 1)}
    fields = {k: np.array([c["parallel"].get(k, _DEFAULTS[k]) for c in group]) for k in _FIELDS}
    plan = batch_plan(scenario, schedule=fields["schedule"], fields=fields, **shape)
    memory = estimate_memory(scenario, plan, lower(scenario, plan, virtual=False))
    peak = np.broadcast_to(memory.peak_bytes, (len(group),))
    fits = peak <= scenario.cluster.chip.hbm_bytes
    keep = fits if prune_memory else np.ones(len(group), dtype=bool)
    step_s = np.full(len(group), np.nan)
    model_flops = np.full(len(group), np.nan)
    if keep.any():
        sub = {k: v[keep] for k, v in fields.items()}
        sub_plan = batch_plan(scenario, schedule=sub["schedule"], fields=sub, **shape)
        step = estimate_step(
            lower(scenario, sub_plan, virtual=False),
            sub_plan,
            scenario.cluster,
            training.precision,
            comm_model=comm,
        )
        step_s[keep] = step.step_time_s
        model_flops[keep] = step.model_flops_per_gpu
    tokens = training.global_batch * training.seq_len
    gpus = scenario.cluster.gpus
    out = []
    names = tuple(sorted(first["parallel"]))
    for i, c in enumerate(group):
        base = {
            "key": plan_key(
                c,
                base_digest=base_digest,
                fields=names if len(c["parallel"]) == len(names) else None,
            ),
            "cluster": cluster_label(c),
            "parallel": c["parallel"],
            "gpus": gpus,
            "peak_gib_per_gpu": float(peak[i]) / 2**30,
            "fits": bool(fits[i]),
        }
        if not keep[i]:
            out.append(
                {
                    **base,
                    "step_time_s": None,
                    "tokens_per_s": None,
                    "tokens_per_s_per_gpu": None,
                    "mfu": None,
                    "error": "does not fit in memory",
                }
            )
            continue
        t = float(step_s[i])
        out.append(
            {
                **base,
                "step_time_s": t,
                "tokens_per_s": tokens / t,
                "tokens_per_s_per_gpu": tokens / t / gpus,
                "mfu": float(model_flops[i]) / t / peak_flops,
                "error": None,
            }
        )
    return out


def _failed(candidate: dict[str, Any], error: str, base_digest: str) -> dict[str, Any]:
    return {
        "key": plan_key(candidate, base_digest=base_digest),
        "cluster": cluster_label(candidate),
        "parallel": candidate["parallel"],
        "gpus": None,
        "step_time_s": None,
        "tokens_per_s": None,
        "tokens_per_s_per_gpu": None,
        "mfu": None,
        "peak_gib_per_gpu": None,
        "fits": False,
        "error": error,
    }
