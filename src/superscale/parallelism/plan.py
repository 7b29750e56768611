"""Resolve a scenario's parallel spec into a plan: derived sizes and group placement.

Ranks are ordered tp fastest, then cp, then dp, then pp (Megatron-LM's default order), so a
group of `size` members with stride `stride` spans `size·stride` consecutive ranks. A group
lands inside one scale-up domain when that span fits the domain, inside one system (crossing
the system's domain link, e.g. PCIe) when it fits the system, and on the scale-out network
otherwise. Expert-parallel groups are consecutive ranks (expert tensor parallelism 1, so an
EP group may take in a TP group); the expert-data-parallel group (edp) that reduces expert
gradients has stride ep.

Under HSDP (`parallel.fsdp.shard_group` = s) the dp·cp ranks that reduce gradients split
into shard groups of s consecutive ones (stride tp; weights, gradients and optimizer states
shard inside one) and replica groups (`dpr`: dp·cp/s members, stride tp·s) that all-reduce
the gradient shards; routed experts likewise shard over tp·s/ep expert-data-parallel
ranks (stride ep) and replicate over `edpr` (TorchTitan's dp_replicate × dp_shard mesh).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from superscale.costs.host import HOST_LAUNCH_S
from superscale.hardware.spec import Cluster, Link
from superscale.parallelism.experts import imbalance
from superscale.scenario import Scenario
from superscale.scenario.layout import plan_layout
from superscale.scenario.rules import schedule_warning

Level = Literal["domain", "system", "scale-out"]
GROUP_KINDS = ("tp", "cp", "ep", "dp", "edp", "pp")


@dataclass(frozen=True, slots=True, kw_only=True)
class GroupPlacement:
    """Where one kind of parallel group lands on the hardware."""

    kind: str
    size: int
    stride: int
    level: Level
    link: Link
    per_domain: int  # members of one group inside one scale-up domain
    per_system: int  # members of one group inside one system

    def describe(self, cluster: Cluster) -> str:
        box = "super-node" if cluster.system.kind == "super-node" else "server"
        where = {
            "domain": f"inside a {box}",
            "system": "inside a server, across its domain link",
            "scale-out": "across the scale-out network",
        }[self.level]
        return f"{where} ({self.link.display_name})"


@dataclass(frozen=True, slots=True, kw_only=True)
class GroupShape:
    """A group's size and rank stride only: all a collective's cost needs. Fields may be
    arrays (one value per plan of a batch)."""

    size: Any
    stride: Any
    # for a batch: (its distinct (size, stride) pairs as size·2³² + stride, each plan's pair)
    layouts: Any = None

    @classmethod
    def of(cls, size: Any, stride: Any) -> GroupShape:
        """A batch's group with its distinct layouts found once: every collective on the
        group reuses them rather than sorting the batch again."""
        import numpy as np

        size, stride = np.broadcast_arrays(np.asarray(size), np.asarray(stride))
        codes = size.ravel().astype(np.int64) * (1 << 32) + stride.ravel().astype(np.int64)
        pairs, inverse = np.unique(codes, return_inverse=True)
        return cls(size=size, stride=stride, layouts=(pairs, inverse.ravel()))


@dataclass(frozen=True, slots=True, kw_only=True)
class Plan:
    """A fully resolved parallel plan for one scenario."""

    tp: int
    pp: int
    cp: int
    ep: int
    dp: int
    micro_batch: int
    micro_batches: int  # per pipeline per step
    virtual_stages: int
    schedule: str
    zero: int
    recompute: str
    sequence_parallel: bool
    flash_attention: bool
    tp_comm_overlap: bool
    dp_comm_overlap: bool
    groups: dict[str, GroupPlacement]
    warnings: tuple[str, ...]
    recompute_modules: tuple[str, ...] = ("core_attn",)
    fp8_activations: bool = False
    ep_comm_overlap: bool = False
    ep_dispatch: str = "all_to_all"
    expert_gemm: str = "per_expert"
    grad_reduce_dtype: str = "fp32"
    expert_imbalance: float = 1.0
    redundant_experts: int = 0
    layout: tuple[int, ...] | None = None  # layers per chunk; None: the even split
    fsdp_reshard: bool = True  # ZeRO-3/FSDP2: gather weights again in backward
    fsdp_prefetch: int = 1  # layers gathered ahead; 0: every gather exposed
    fsdp_shard: int | None = None  # HSDP: GPUs of dp·cp one weight copy shards over
    cuda_graphs: tuple[str, ...] = ()  # captured CUDA-graph scopes (costs/host.py)
    host_launch_s: float = HOST_LAUNCH_S  # host time per eager kernel launch

    @property
    def gpus(self) -> int:
        return self.tp * self.pp * self.cp * self.dp

    @property
    def dp_shard(self) -> Any:
        """GPUs dense weights, gradients and optimizer states shard over (all of dp·cp, or
        HSDP's shard group)."""
        return self.dp * self.cp if self.fsdp_shard is None else self.fsdp_shard

    @property
    def replicas(self) -> Any:
        """Copies of the sharded state across data parallelism (1 unless HSDP)."""
        return self.dp * self.cp // self.dp_shard


def grad_group(plan: Plan) -> GroupShape:
    """The group dense gradients reduce-scatter (and ZeRO-3 weights all-gather) over:
    dp·cp ranks at stride tp, or HSDP's shard group."""
    return GroupShape(size=plan.dp_shard, stride=plan.tp)


def place_group(kind: str, size: int, stride: int, cluster: Cluster) -> GroupPlacement:
    """Place a group of `size` ranks spaced `stride` apart on the cluster."""
    system = cluster.system
    domain = system.scale_up.gpus
    span = size * stride
    if size == 1 or span <= domain:
        level: Level = "domain"
        link = system.scale_up.link
    elif span <= system.gpus and system.domain_link is not None:
        level, link = "system", system.domain_link
    else:
        level, link = "scale-out", cluster.nic
    per_domain = max(1, min(size, domain // stride)) if stride <= domain else 1
    per_system = max(1, min(size, system.gpus // stride)) if stride <= system.gpus else 1
    return GroupPlacement(
        kind=kind,
        size=size,
        stride=stride,
        level=level,
        link=link,
        per_domain=per_domain,
        per_system=per_system,
    )


def resolve(scenario: Scenario) -> Plan:
    """Derive dp and micro-batch count and place every group on the topology."""
    p, cluster = scenario.parallel, scenario.cluster
    dp = scenario.dp
    edp = p.tp * p.cp * dp // p.ep
    strides = {"tp": 1, "cp": p.tp, "dp": p.tp * p.cp, "pp": p.tp * p.cp * dp, "ep": 1, "edp": p.ep}
    sizes = {"tp": p.tp, "cp": p.cp, "dp": dp, "pp": p.pp, "ep": p.ep, "edp": edp}
    groups = {k: place_group(k, sizes[k], strides[k], cluster) for k in GROUP_KINDS}
    shard = p.fsdp.shard_group if p.fsdp is not None else None
    if shard is not None:  # HSDP: shard inside a group, replicate across (module docstring)
        replicas = p.cp * dp // shard
        groups["edp"] = place_group("edp", edp // replicas, p.ep, cluster)
        groups["dpr"] = place_group("dpr", replicas, p.tp * shard, cluster)
        if scenario.model.moe is not None:
            groups["edpr"] = place_group("edpr", replicas, p.ep * (edp // replicas), cluster)
    warnings = []
    domain = cluster.system.scale_up
    for kind in ("tp", "cp", "ep"):
        g = groups[kind]
        if g.level != "domain":
            what = {"tp": "tensor", "cp": "context", "ep": "expert"}[kind]
            warnings.append(
                f"{kind}={g.size} spans {g.size * g.stride} GPUs, more than the scale-up "
                f"domain of {domain.gpus} ({domain.link.display_name}): {what}-parallel "
                f"traffic crosses {g.link.display_name}"
            )
    micro_batches = scenario.require_training().global_batch // (dp * p.micro_batch)
    warning = schedule_warning(p.schedule, pp=p.pp, micro_batches=micro_batches)
    if warning is not None:
        warnings.append(warning)
    return Plan(
        tp=p.tp,
        pp=p.pp,
        cp=p.cp,
        ep=p.ep,
        dp=dp,
        micro_batch=p.micro_batch,
        micro_batches=micro_batches,
        virtual_stages=p.virtual_stages,
        schedule=p.schedule,
        zero=p.zero,
        recompute=p.recompute,
        sequence_parallel=p.sequence_parallel and p.tp > 1,
        flash_attention=p.flash_attention,
        tp_comm_overlap=p.tp_comm_overlap and p.tp > 1,
        dp_comm_overlap=p.dp_comm_overlap,
        groups=groups,
        warnings=tuple(warnings),
        **{**_recipe(scenario), "expert_imbalance": expert_imbalance(scenario, p.ep)},
        ep_comm_overlap=p.ep_comm_overlap and p.ep > 1,
        layout=plan_layout(p, scenario.model.layers),
        fsdp_shard=shard,
    )


def batch_plan(
    scenario: Scenario, *, pp: int, virtual_stages: int, schedule: Any, fields: dict[str, Any]
) -> Plan:
    """A plan whose per-plan fields are numpy arrays (one entry per plan of a batch).

    `fields` holds arrays tp, cp, ep, micro_batch, zero, recompute (strings) and
    sequence_parallel (booleans); pp and virtual stages are shared, and `schedule` is a
    name or an array of names (schedules that lower alike share a batch). Groups carry
    only their sizes and strides (`GroupShape`), all a collective's cost needs; plans must
    already be valid (search.space builds them so: an HSDP shard group divides every
    plan's dp·cp).
    """
    import numpy as np

    p = scenario.parallel
    training = scenario.require_training()
    tp, cp, ep = fields["tp"], fields["cp"], fields["ep"]
    dp = scenario.cluster.gpus // (tp * pp * cp)
    micro_batch = fields["micro_batch"]
    edp = tp * cp * dp // ep
    groups: dict[str, Any] = {
        "tp": GroupShape.of(tp, np.ones_like(tp)),
        "cp": GroupShape.of(cp, tp),
        "dp": GroupShape.of(dp, tp * cp),
        "pp": GroupShape.of(np.full_like(tp, pp), tp * cp * dp),
        "ep": GroupShape.of(ep, np.ones_like(tp)),
        "edp": GroupShape.of(edp, ep),
    }
    shard = p.fsdp.shard_group if p.fsdp is not None else None
    if shard is not None:  # HSDP, as `resolve` places it (the shard group is the base's)
        replicas = cp * dp // shard
        groups["edp"] = GroupShape.of(edp // replicas, ep)
        groups["dpr"] = GroupShape.of(replicas, tp * shard)
        # a dense model's expert ops stay in a batch with zero bytes: give them a group
        groups["edpr"] = GroupShape.of(replicas, ep * (edp // replicas))
    return Plan(
        tp=tp,
        pp=pp,
        cp=cp,
        ep=ep,
        dp=dp,
        micro_batch=micro_batch,
        micro_batches=training.global_batch // (dp * micro_batch),
        virtual_stages=virtual_stages,
        schedule=schedule,
        zero=fields["zero"],
        recompute=fields["recompute"],
        sequence_parallel=np.logical_and(fields["sequence_parallel"], tp > 1),
        flash_attention=p.flash_attention,
        tp_comm_overlap=p.tp_comm_overlap,
        dp_comm_overlap=p.dp_comm_overlap,
        groups=groups,
        warnings=(),
        **{**_recipe(scenario), "expert_imbalance": expert_imbalance(scenario, ep)},
        ep_comm_overlap=p.ep_comm_overlap,
        fsdp_shard=shard,
    )


def expert_imbalance(scenario: Scenario, ep: Any) -> Any:
    """The busiest expert-parallel GPU's routed tokens over the mean: from the router's
    loads and the placement (`parallelism/experts.py`) where the scenario gives loads, else
    its `expert_imbalance`; one figure per plan for a batch's `ep` array."""
    import numpy as np

    p = scenario.parallel
    loads = p.expert_loads
    if loads is None:
        return p.expert_imbalance

    def one(size: int) -> float:
        if size <= 1:
            return 1.0
        return imbalance(loads, size, redundant=p.redundant_experts, placement=p.placement)

    if isinstance(ep, np.ndarray):
        table = {int(e): one(int(e)) for e in np.unique(ep)}
        return np.array([table[int(e)] for e in ep.ravel()]).reshape(ep.shape)
    return one(int(ep))


def _recipe(scenario: Scenario) -> dict[str, Any]:
    """The software-stack fields a plan takes from the scenario as they are (one plan or a
    batch alike)."""
    p = scenario.parallel
    fsdp = p.fsdp
    return {
        "fsdp_reshard": fsdp.reshard_after_forward if fsdp is not None else True,
        "fsdp_prefetch": fsdp.prefetch if fsdp is not None else 1,
        "recompute_modules": tuple(p.recompute_modules),
        "fp8_activations": scenario.require_training().fp8_activations,
        "ep_dispatch": p.ep_dispatch,
        "expert_gemm": p.expert_gemm,
        "grad_reduce_dtype": p.grad_reduce_dtype,
        "expert_imbalance": p.expert_imbalance,
        "redundant_experts": p.redundant_experts,
        "cuda_graphs": tuple(p.cuda_graphs),
        "host_launch_s": HOST_LAUNCH_S if p.host_launch_us is None else p.host_launch_us * 1e-6,
    }


def recipe_words(scenario: Scenario, plan: Plan) -> list[str]:
    """The plan's and workload's recipe switches that differ from their defaults, in the
    scenario's words (what `superscale check` shows beside the plan)."""
    p, t, cluster = scenario.parallel, scenario.require_training(), scenario.cluster
    words = []
    if p.fsdp is not None:
        f = p.fsdp
        shard = (
            f"HSDP: shard over {f.shard_group}, {plan.replicas} replicas"
            if f.shard_group is not None
            else "full shard"
        )
        reshard = "reshard after forward" if f.reshard_after_forward else "no reshard"
        words.append(f"FSDP2 {shard}, {reshard}, prefetch {f.prefetch}")
    if plan.layout is not None:
        words.append(f"pipeline layout {'/'.join(str(n) for n in plan.layout)} layers")
    if plan.recompute == "selective" and p.recompute_modules != ("core_attn",):
        words.append(f"recompute modules {', '.join(p.recompute_modules)}")
    if plan.ep > 1:
        words.append(f"expert dispatch {p.ep_dispatch}")
    if scenario.model.moe is not None:
        if p.expert_gemm != "per_expert":
            words.append(f"expert GEMMs {p.expert_gemm}")
        if plan.ep_comm_overlap:
            words.append("expert all-to-all overlapped")
        if p.expert_loads is not None:
            words.append(
                f"expert loads placed {p.placement}: imbalance {plan.expert_imbalance:.3g}"
            )
        elif p.expert_imbalance != 1.0:
            words.append(f"expert imbalance {p.expert_imbalance:g}")
        if p.redundant_experts:
            words.append(f"{p.redundant_experts} redundant experts")
    if p.cuda_graphs:
        words.append(f"CUDA graphs: {', '.join(p.cuda_graphs)}")
    if p.host_launch_us is not None:
        words.append(f"host {p.host_launch_us:g} us per kernel launch")
    if p.grad_reduce_dtype != "fp32":
        words.append(f"gradients reduced in {p.grad_reduce_dtype}")
    if t.precision == "fp8":
        words.append(f"fp8 recipe {t.fp8_recipe}")
    if t.bf16_layers is not None:
        words.append(f"first {t.bf16_layers.start} and last {t.bf16_layers.end} layers in bf16")
    if t.fp8_activations:
        words.append("fp8 activation storage")
    if t.document_mask is not None:
        mask = t.document_mask
        spread = f", length cv {mask.length_cv:g}" if mask.length_cv else ""
        words.append(f"document-masked attention, mean {mask.mean_doc_tokens:,} tokens{spread}")
    if t.adam_moments != "fp32":
        words.append(f"Adam moments in {t.adam_moments}")
    if cluster.power_limit_w is not None:
        words.append(f"power cap {cluster.power_limit_w:g} W per GPU")
    if cluster.gpus_per_system is not None:
        words.append(f"{cluster.gpus_per_system}-GPU slices of each system")
    return words
