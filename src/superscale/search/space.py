"""The space of parallel plans for a scenario, and the rules that prune it before costing.

A candidate is a scenario with its `cluster` and `parallel` sections replaced. Sizes are
powers of two (and the other divisors Megatron-LM plans use for pp) that divide what they
must: tp the heads and the GPUs, pp the layers and the GPUs, cp the sequence, ep the
experts and tp·cp·dp, the micro-batch the per-replica batch. Each pruned plan is counted
under the reason that removed it. A base plan's HSDP shard group is kept, not searched:
plans it cannot split (`rules.hsdp_problem`) are pruned.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from superscale.errors import SpecError
from superscale.hardware.spec import Cluster
from superscale.models.spec import ModelSpec
from superscale.scenario import TrainingSpec
from superscale.scenario.rules import hsdp_problem, schedule_names, schedule_problem

RECOMPUTE = ("none", "selective", "full")
ZERO = (0, 1, 2, 3)


@dataclass(frozen=True, slots=True, kw_only=True)
class Limits:
    """Bounds of the enumeration (each keeps the space finite and realistic)."""

    max_tp: int = 64
    max_pp: int = 128
    max_cp: int = 16
    max_micro_batch: int = 8
    max_virtual_stages: int = 32
    # every registered schedule but GPipe, which holds m micro-batches for 1F1B's bubble
    schedules: tuple[str, ...] = field(
        default_factory=lambda: tuple(n for n in schedule_names() if n != "gpipe")
    )
    zero: tuple[int, ...] = ZERO
    recompute: tuple[str, ...] = RECOMPUTE
    sequence_parallel: tuple[bool, ...] = (True, False)


# The searched plan fields, in the order a table keeps them; `recompute` and `schedule`
# are held as codes into RECOMPUTE and SCHEDULES.
SCHEDULES = schedule_names()
COLUMNS = (
    "tp",
    "pp",
    "cp",
    "ep",
    "micro_batch",
    "virtual_stages",
    "schedule",
    "zero",
    "recompute",
    "sequence_parallel",
)
CODES = {"schedule": SCHEDULES, "recompute": RECOMPUTE}
# The base plan's software-stack switches every candidate keeps (not searched).
STACK_SWITCHES = (
    "tp_comm_overlap",
    "dp_comm_overlap",
    "ep_comm_overlap",
    "ep_dispatch",
    "expert_gemm",
    "grad_reduce_dtype",
    "expert_imbalance",
    "redundant_experts",
    "expert_loads",
    "expert_placement",
    "recompute_modules",
    "cuda_graphs",
    "host_launch_us",
    "fsdp",  # FSDP2's words: the search then keeps zero 3, which they mean
)


@dataclass(frozen=True, slots=True, kw_only=True)
class PlanTable:
    """Candidate plans of one scenario on one cluster, as columns: what the vectorized
    evaluator reads, and small to ship to a worker (the scenario travels once, not once a
    plan).

    `base` is the scenario mapping without its parallel section (model, training and the
    cluster as an inline mapping); `stack` the parallel switches every plan keeps
    (flash_attention, tp_comm_overlap, dp_comm_overlap); `columns` one int array per name
    of COLUMNS (booleans as 0/1, schedule and recompute as codes).
    """

    base: dict[str, Any]
    stack: dict[str, Any]
    columns: dict[str, np.ndarray]

    def __len__(self) -> int:
        return len(self.columns["tp"])

    @classmethod
    def from_rows(
        cls, base: dict[str, Any], stack: dict[str, Any], rows: list[tuple[int, ...]]
    ) -> PlanTable:
        """A table of `rows`, each a tuple in COLUMNS order (codes for the named fields)."""
        data = np.array(rows, dtype=np.int64).reshape(len(rows), len(COLUMNS))
        return cls(base=base, stack=stack, columns={k: data[:, i] for i, k in enumerate(COLUMNS)})

    def values(self, name: str) -> np.ndarray:
        """Column `name` as the cost code takes it (names for schedule and recompute,
        booleans for sequence parallelism)."""
        col = self.columns[name]
        if name in CODES:
            return np.asarray(np.array(CODES[name])[col])
        if name == "sequence_parallel":
            return col.astype(bool)
        return col

    def take(self, rows: np.ndarray) -> PlanTable:
        """The plans at `rows` (indices or a mask), same scenario."""
        return PlanTable(
            base=self.base, stack=self.stack, columns={k: v[rows] for k, v in self.columns.items()}
        )

    def parallel(self, row: int) -> dict[str, Any]:
        """The `parallel:` section of plan `row`, as a scenario file would spell it."""
        return self.parallels(np.array([row]))[0]

    def parallels(self, rows: Any = None) -> list[dict[str, Any]]:
        """The `parallel:` sections of plans `rows` (default: all), in order."""
        picked = self.columns if rows is None else {k: v[rows] for k, v in self.columns.items()}
        values: list[list[Any]] = []
        for name in COLUMNS:
            col = picked[name].tolist()
            if name in CODES:
                col = [CODES[name][v] for v in col]
            elif name == "sequence_parallel":
                col = [bool(v) for v in col]
            values.append(col)
        return [
            {**dict(zip(COLUMNS, row, strict=True)), **self.stack}
            for row in zip(*values, strict=True)
        ]

    def candidate(self, row: int) -> dict[str, Any]:
        """Plan `row` as a whole scenario mapping."""
        return {**self.base, "parallel": self.parallel(row)}

    def candidates(self) -> list[dict[str, Any]]:
        return [{**self.base, "parallel": par} for par in self.parallels()]


@dataclass(slots=True)
class Enumeration:
    """Valid plans, one table per cluster, and the count of pruned plans by reason."""

    tables: list[PlanTable] = field(default_factory=list)
    pruned: Counter[str] = field(default_factory=Counter)

    @property
    def plans(self) -> int:
        return sum(len(t) for t in self.tables)

    @property
    def candidates(self) -> list[dict[str, Any]]:
        """Every plan as a scenario mapping (built on demand; tables are the compact form)."""
        return [c for t in self.tables for c in t.candidates()]


_SCHEDULE_CODE = {name: i for i, name in enumerate(SCHEDULES)}
_RECOMPUTE_CODE = {name: i for i, name in enumerate(RECOMPUTE)}


def _powers_of_two(limit: int) -> list[int]:
    out, x = [], 1
    while x <= limit:
        out.append(x)
        x *= 2
    return out


def _divisors(n: int, limit: int) -> list[int]:
    return [d for d in range(1, min(n, limit) + 1) if n % d == 0]


def parallel_plans(
    model: ModelSpec,
    gpus: int,
    *,
    seq_len: int,
    global_batch: int,
    limits: Limits,
    pruned: Counter[str],
    redundant_experts: int = 0,
    shard_group: int | None = None,
) -> Iterator[tuple[int, ...]]:
    """Every valid plan for `gpus` GPUs as a row in COLUMNS order (counting what it
    prunes); `redundant_experts` replicas join the experts ep must divide, and an HSDP
    `shard_group` must split each plan's data parallelism."""
    moe = model.moe
    for tp in _powers_of_two(min(limits.max_tp, gpus)):
        if gpus % tp:
            pruned["tp does not divide the GPUs"] += 1
            continue
        if model.heads % tp:
            pruned["tp does not divide the heads"] += 1
            continue
        for pp in _divisors(gpus // tp, limits.max_pp):
            if pp > model.layers:
                pruned["pp exceeds the layers"] += 1
                continue
            for cp in _powers_of_two(min(limits.max_cp, gpus // (tp * pp))):
                if (gpus // tp // pp) % cp or seq_len % cp:
                    pruned["cp does not divide the GPUs or the sequence"] += 1
                    continue
                dp = gpus // (tp * pp * cp)
                if global_batch % dp:
                    pruned["dp does not divide the global batch"] += 1
                    continue
                eps = [1]
                if moe is not None:
                    slots = moe.experts + redundant_experts
                    eps = [
                        e
                        for e in _powers_of_two(min(slots, tp * cp * dp))
                        if slots % e == 0 and (tp * cp * dp) % e == 0
                    ]
                for ep in eps:
                    if shard_group is not None:
                        problem = hsdp_problem(shard_group, tp=tp, cp=cp, ep=ep, dp=dp)
                        if problem is not None:
                            pruned[problem] += 1
                            continue
                    yield from _inner(
                        model,
                        tp=tp,
                        pp=pp,
                        cp=cp,
                        dp=dp,
                        ep=ep,
                        global_batch=global_batch,
                        limits=limits,
                        pruned=pruned,
                    )


def _inner(
    model: ModelSpec,
    *,
    tp: int,
    pp: int,
    cp: int,
    dp: int,
    ep: int,
    global_batch: int,
    limits: Limits,
    pruned: Counter[str],
) -> Iterator[tuple[int, ...]]:
    per_replica = global_batch // dp
    for mb in _powers_of_two(min(limits.max_micro_batch, per_replica)):
        if per_replica % mb:
            pruned["micro-batch does not divide the per-replica batch"] += 1
            continue
        m = per_replica // mb
        for schedule in limits.schedules:
            vs = [1]
            if schedule == "interleaved":
                if pp == 1:
                    continue
                # Megatron-LM interleaves only when pp·v divides the layers
                vs = [
                    v
                    for v in range(2, limits.max_virtual_stages + 1)
                    if model.layers % (pp * v) == 0
                ]
                if m % pp:
                    pruned["interleaving needs micro-batches divisible by pp"] += len(vs)
                    continue
            if schedule in {"zb-h1", "dualpipe"} and pp == 1:
                continue  # a single stage: 1f1b is the same plan
            for v in vs:
                problem = schedule_problem(schedule, pp=pp, virtual_stages=v, micro_batches=m)
                if problem is not None:
                    pruned[problem] += 1
                    continue
                for zero in limits.zero:
                    for recompute in limits.recompute:
                        sps = limits.sequence_parallel if tp > 1 else (False,)
                        for sp in sps:
                            if model.moe is not None and tp > 1 and not sp:
                                pruned["MoE with tp > 1 needs sequence parallelism"] += 1
                                continue
                            yield (
                                tp,
                                pp,
                                cp,
                                ep,
                                mb,
                                v,
                                _SCHEDULE_CODE[schedule],
                                zero,
                                _RECOMPUTE_CODE[recompute],
                                int(sp),
                            )


def model_and_training(base: dict[str, Any]) -> tuple[ModelSpec, TrainingSpec]:
    """The model and training sections of a scenario mapping, validated on their own (the
    base plan, which the search replaces, need not be valid)."""
    from pydantic import ValidationError

    from superscale.scenario import _load_model
    from superscale.spec import spec_error_from

    if "training" not in base:
        raise SpecError("a search needs a training section (seq_len, global_batch, ...)")
    try:
        model = ModelSpec.model_validate(_load_model(base.get("model"), None))
    except ValidationError as exc:
        raise spec_error_from(exc, prefix="model") from None
    try:
        training = TrainingSpec.model_validate(base["training"])
    except ValidationError as exc:
        raise spec_error_from(exc, prefix="training") from None
    return model, training


def _shard_group(fsdp: Any) -> int | None:
    """The base plan's HSDP shard group (validated as the scenario validates it)."""
    from pydantic import ValidationError

    from superscale.scenario import FsdpSpec
    from superscale.spec import spec_error_from

    try:
        return FsdpSpec.model_validate(fsdp).shard_group
    except ValidationError as exc:
        raise spec_error_from(exc, prefix="parallel.fsdp") from None


def enumerate_plans(
    base: dict[str, Any], *, clusters: list[Cluster], limits: Limits | None = None
) -> Enumeration:
    """Candidates (scenario dicts) for `base` on each cluster; pruned counts by reason.

    `base` is a scenario mapping whose model and training sections are kept; each
    candidate replaces `cluster` (inline mapping) and `parallel`.
    """
    limits = limits or Limits()
    out = Enumeration()
    model, training = model_and_training(base)
    raw_parallel = base.get("parallel")
    base_parallel: dict[str, Any] = raw_parallel if isinstance(raw_parallel, dict) else {}
    flash = bool(base_parallel.get("flash_attention", True))
    # the software stack's switches are not searched: every candidate keeps the base's
    stack: dict[str, Any] = {"flash_attention": flash}
    stack.update({k: base_parallel[k] for k in STACK_SWITCHES if k in base_parallel})
    fsdp = stack.get("fsdp")
    shard_group = None
    if fsdp is not None:
        limits = replace(limits, zero=(3,))  # FSDP2 is full sharding
        shard_group = _shard_group(fsdp)
    rest = {k: v for k, v in base.items() if k not in {"cluster", "parallel"}}
    for cluster in clusters:
        cluster_dict = cluster.model_dump(mode="json", exclude_none=True)
        rows = list(
            parallel_plans(
                model,
                cluster.gpus,
                seq_len=training.seq_len,
                global_batch=training.global_batch,
                limits=limits,
                pruned=out.pruned,
                redundant_experts=int(stack.get("redundant_experts", 0)),
                shard_group=shard_group,
            )
        )
        if rows:
            table_base = {**rest, "cluster": cluster_dict}
            out.tables.append(PlanTable.from_rows(table_base, stack, rows))
    return out
