"""Time of one serving iteration: prefill and decode tokens batched together.

An iteration runs T tokens (decode tokens of the running requests plus prefill chunks)
through every layer of an instance. Per GPU and layer, each weight matrix is a GEMM of
(T, n, k): it reads its weights once whatever T is, and does 2·T·n·k FLOPs, so

  t_linear(T) = max(2·T·N / (peak · matmul_fraction · g(T) · clock), N·bytes / (HBM · mem))

with N the weight elements on the GPU and g the shape factor of costs/compute.py (Hockney
half-performance, Williams et al. 2009 roofline): small-batch decode is memory-bound (it
streams the weights), large batches and prefill are compute-bound. Mixture-of-experts layers
read only the experts the batch activates: with T tokens choosing top_k of the E physical
experts (routed plus EPLB's redundant copies, load spread evenly), an expert is hit with
probability 1 − (1 − k/E)^T.

Attention is linear in the context. A decode token reads the KV cache of its request:
memory-bound for grouped-query attention, compute-heavier for absorbed latent attention,
whose rate comes from the FlashMLA rows where a chip has them (`kernels.py`); q query tokens
of one request (speculative verification) share one read of its cache, and FlashMLA pads
fewer than 64 query rows (heads · query tokens) to a full block. A prefill chunk of c
tokens after p cached ones does 2·heads·c·(p + c/2)·(d_qk + d_v) FLOPs (causal), at the bf16
attention rate or, with fp8 attention, that rate times FlashAttention-3's FP8/FP16 ratio.

Tensor parallelism costs two all-reduces per layer (Megatron-LM, Shoeybi et al. 2019),
expert parallelism a dispatch and a combine per MoE layer (DeepSeek-AI 2024, Sec. 3.4),
pipeline parallelism a send/recv per stage boundary; their times come from the topology's
`CommModel` on the placed groups, or, for DeepEP's low-latency decode kernels, from their
measured bandwidth against EP size (at least their one-token latency). With two-batch
overlap (SGLang's TBO) each layer runs two half batches, and one half's dispatch/combine
runs under the other's compute:
t_layer = max(2·compute(T/2), 2·a2a(T/2)); exposed all-to-all = max(0, 2·a2a − 2·compute),
the rest hidden. Halving the batch re-reads the weights, so TBO can lose at small batches.

Speculative decoding (MTP, EAGLE, a draft model) adds a drafter's passes per iteration
(`draft_s`, by decoding requests: d draft steps at one token per request and one draft
extend over the verified tokens, as SGLang's EAGLE worker runs them) and makes each decoding
request carry 1 + d query tokens; prompt tokens pass through the drafter once (draft extend
after prefill, on prefill pools too).

The result is affine in the context and the prefill attention work, so an engine can sum
many decode iterations in closed form: time = base(T) + draft(b) + sample·n_sampled +
kv·context + prefill·pairs. base(T) and its parts are tabulated once per engine with numpy.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from superscale.collectives.tuner import CommModel
from superscale.costs.compute import REFERENCE_DIM, shape_factor
from superscale.errors import SpecError
from superscale.hardware.spec import Chip, Cluster
from superscale.inference.kernels import (
    fp8_attention_kernel,
    low_latency_dispatch,
    mla_decode_kernel,
)
from superscale.inference.kv import (
    ACT_BYTES,
    BYTES_PER_ELEMENT,
    HEAD_BYTES,
    kv_bytes_per_token_layer_per_gpu,
)
from superscale.inference.spec import PlanSpec
from superscale.models.spec import ModelSpec
from superscale.parallelism.plan import GroupPlacement, place_group

KERNELS_PER_DENSE_LAYER = 10  # norms, qkv, rope, attention, out, gate/up, act, down, residuals
KERNELS_PER_MOE_LAYER = 16  # + router, top-k, permute, grouped GEMMs, unpermute
KERNELS_PER_DRAFT_STEP = 4  # projection, norms, head, sampling beside the draft layer
# Serving GEMMs put the batch on the MMA's 64-row (Hopper warpgroup) side, or swap operands
# for skinny decode GEMMs, so the batch dimension is quantized at a quarter of the tile
# size the training GEMMs' half-performance dimension reflects.
M_HALF_DIM_FRACTION = 0.25
# Parts of base(T), summed; ep_comm_hidden runs under compute and is not in base.
PARTS = ("compute", "tp_comm", "ep_comm", "pp_comm", "overhead")


@dataclass(frozen=True, slots=True, kw_only=True)
class Speculation:
    """A resolved speculative-decoding setting (see `SpeculativeSpec`)."""

    method: str
    draft_tokens: int
    acceptance_rate: float
    draft_model: ModelSpec | None = None

    @property
    def query_tokens(self) -> int:
        return 1 + self.draft_tokens

    @property
    def accepted_tokens(self) -> float:
        """Expected tokens a request gains per iteration (Leviathan et al. 2023, eq. 1)."""
        a, d = self.acceptance_rate, self.draft_tokens
        if a >= 1.0:
            return float(d + 1)
        return float((1.0 - a ** (d + 1)) / (1.0 - a))


@dataclass(frozen=True, slots=True, kw_only=True)
class StepModel:
    """Iteration time of one engine (an instance, or one pipeline micro-batch slot of it)."""

    base_s: np.ndarray  # [T] weights, GEMMs, collectives, kernels, host overhead
    sample_s: float  # per sampled token (output-head GEMM)
    kv_s_per_token: float  # decode attention, per context token of the batch
    prefill_s_per_pair: float  # prefill attention, per causal (query, key) pair
    parts_s: dict[str, np.ndarray] = field(default_factory=dict)  # [T] PARTS + ep_comm_hidden
    draft_s: np.ndarray = field(default_factory=lambda: np.zeros(1))  # [b] drafter per iteration
    query_tokens: int = 1  # tokens a decoding request runs per iteration
    prompt_draft_s_per_token: float = 0.0  # the drafter's pass over each prompt token
    accepted_tokens: float = 1.0  # tokens a decoding request gains per iteration
    dispatch: str = "none"  # MoE dispatch kernels: none, all_to_all, low_latency, per_batch
    attention_precision: str = "bf16"
    mla_decode_tflops: float | None = None  # compute-bound MLA decode rate used

    # Python lists of base_s and draft_s: the simulator looks them up once per iteration,
    # and list indexing is several times faster than numpy scalar indexing.
    _base: list[float] = field(init=False, repr=False, compare=False)
    _draft: list[float] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_base", self.base_s.tolist())
        object.__setattr__(self, "_draft", self.draft_s.tolist())

    def base(self, tokens: int) -> float:
        table = self._base
        if tokens < len(table):
            return table[tokens]
        return _lookup(table, tokens)

    def draft(self, requests: int) -> float:
        if requests <= 0 or self.query_tokens == 1:
            return 0.0
        table = self._draft
        return table[requests] if requests < len(table) else _lookup(table, requests)

    def part(self, name: str, tokens: int) -> float:
        """Seconds of part `name` (PARTS or ep_comm_hidden) in an iteration of `tokens`."""
        return float(_lookup_many(self.parts_s[name], np.array([tokens]))[0])

    def parts_total(self, counts: dict[int, int]) -> dict[str, float]:
        """Each part's seconds summed over iterations, `counts` mapping tokens to how many
        iterations ran that size."""
        if not counts:
            return {name: 0.0 for name in self.parts_s}
        tokens = np.fromiter(counts.keys(), dtype=np.int64)
        times = np.fromiter(counts.values(), dtype=np.float64)
        return {
            name: float(times @ _lookup_many(table, tokens)) for name, table in self.parts_s.items()
        }

    def iteration_s(
        self,
        tokens: int,
        *,
        sampled: int = 0,
        context: float = 0.0,
        pairs: float = 0.0,
        drafting: int = 0,
        prompt: int = 0,
    ) -> float:
        """Seconds of one iteration of `tokens` tokens (decode + prefill), `drafting` of
        whose requests decode speculatively and `prompt` of which are prompt tokens."""
        return (
            self.base(tokens)
            + self.draft(drafting)
            + self.prompt_draft_s_per_token * prompt
            + self.sample_s * sampled
            + self.kv_s_per_token * context
            + self.prefill_s_per_pair * pairs
        )


def _lookup_many(table: np.ndarray, index: np.ndarray) -> np.ndarray:
    """`table` at each index, extrapolated linearly beyond its end as `_lookup` does."""
    last = len(table) - 1
    inside = np.minimum(index, last)
    out: np.ndarray = table[inside].astype(np.float64)
    if last >= 1:
        out += (table[last] - table[last - 1]) * np.maximum(index - last, 0)
    return out


def _lookup(table: list[float], index: int) -> float:
    if index < len(table):
        return float(table[index])
    if len(table) < 2:
        return float(table[-1])
    # beyond the table the time is linear (compute-bound): extrapolate
    slope = float(table[-1] - table[-2])
    return float(table[-1]) + slope * (index - len(table) + 1)


def matmul_fraction(chip: Chip, precision: str) -> float:
    """Large-GEMM fraction of peak at `precision`; where that precision was never measured
    but another was, the measured ratio of the other stands in (the catalog's 0.75 default
    is for chips with no measurement at all)."""
    if chip.efficiency.matmul_fraction is None and precision not in chip.measured_matmul_tflops:
        for other, measured in chip.measured_matmul_tflops.items():
            peak = chip.peak_tflops.get(other)
            if peak:
                return float(min(1.0, measured / peak))
    return chip.matmul_fraction(precision)


def _m_factor(m: np.ndarray, half_dim: float) -> np.ndarray:
    """The m-dimension part of the shape factor, vectorized."""
    if half_dim <= 0:
        return np.ones_like(m)
    ref = REFERENCE_DIM / (REFERENCE_DIM + half_dim)
    m = np.maximum(m, 1.0)
    out: np.ndarray = np.minimum(1.0, (m / (m + half_dim)) / ref)
    return out


def resolve_dispatch(plan: PlanSpec, cluster: Cluster, *, role: str) -> str:
    """The MoE dispatch kernels a pool uses: none (no EP traffic), all_to_all, low_latency,
    or per_batch (the faster of the two at each iteration size).

    Raises:
        SpecError: low_latency asked on a chip without measured kernels.
    """
    stage = plan.tp * plan.attention_dp
    if stage <= 1:
        return "none"
    kernel = low_latency_dispatch(cluster.chip.name)
    # DeepEP sends each token to the ranks holding its experts: one expert shard per rank,
    # so expert tensor parallelism (ep < tp·attention_dp) has no low-latency kernels
    whole = plan.ep in (1, stage)
    if plan.moe_dispatch == "low_latency":
        if kernel is None:
            raise SpecError(
                f"moe_dispatch 'low_latency' has no measured kernels on {cluster.chip.name} "
                "(inference/kernels.yaml; allowed: auto, all_to_all)",
                path="serving.plan.moe_dispatch",
            )
        if not whole:
            raise SpecError(
                f"moe_dispatch 'low_latency' needs ep = tp·attention_dp = {stage} (DeepEP "
                f"shards whole experts), got ep {plan.ep}; allowed: auto, all_to_all",
                path="serving.plan.moe_dispatch",
            )
        return "low_latency"
    if plan.moe_dispatch == "all_to_all":
        return "all_to_all"
    ep_span = plan.ep if plan.ep > 1 else stage
    crosses = ep_span > cluster.system.scale_up.gpus
    if kernel is None or not crosses or not whole or role == "prefill":
        return "all_to_all"
    # a mixed pool runs decode and prefill batches: SGLang's auto mode picks the kernels by
    # batch, taken here as the faster of the two at each iteration size
    return "low_latency" if role == "decode" else "per_batch"


def resolve_attention_precision(requested: str, kv_precision: str, chip: Chip) -> str:
    """bf16 or fp8 attention math; SpecError for fp8 on a chip without a measured kernel."""
    kernel = fp8_attention_kernel(chip.name)
    if requested == "fp8" and kernel is None:
        raise SpecError(
            f"attention_precision 'fp8' has no measured kernel on {chip.name} "
            "(inference/kernels.yaml; allowed: auto, bf16)",
            path="serving.attention_precision",
        )
    if requested == "auto":
        return "fp8" if kernel is not None and kv_precision == "fp8" else "bf16"
    return requested


@dataclass(frozen=True, slots=True, kw_only=True)
class _Layers:
    """Per-layer time curves of one model on one plan (functions of instance tokens)."""

    model: ModelSpec
    plan: PlanSpec
    cluster: Cluster
    comm: CommModel
    precision: str
    dispatch: str

    def _group(self, kind: str, size: int, stride: int) -> GroupPlacement:
        return place_group(kind, size, stride, self.cluster)

    def _collective(self, name: str, nbytes: np.ndarray, group: GroupPlacement) -> np.ndarray:
        try:
            out: np.ndarray = np.asarray(self.comm.time_s(name, nbytes, group), dtype=np.float64)
        except ValueError as exc:
            raise SpecError(f"serving plan: {name} group does not fit the pool: {exc}") from None
        return out

    @property
    def _rates(self) -> tuple[float, float, float, float]:
        chip = self.cluster.chip
        eff = chip.efficiency
        hbm = chip.hbm_bandwidth_bytes_per_s * eff.memory_fraction
        peak = (
            chip.peak_flops(self.precision)
            * matmul_fraction(chip, self.precision)
            * eff.sustained_clock_fraction
        )
        h = self.model.hidden
        nk = shape_factor((REFERENCE_DIM, h, max(h // self.plan.tp, 1)), eff.matmul_half_dim)
        return hbm, peak * nk, eff.matmul_half_dim * M_HALF_DIM_FRACTION, eff.kernel_overhead_us

    def _linear(self, elements: float, m_tokens: np.ndarray) -> np.ndarray:
        hbm, rate, m_half, _ = self._rates
        wb = BYTES_PER_ELEMENT[self.precision]
        flops_s = 2.0 * m_tokens * elements / (rate * _m_factor(m_tokens, m_half))
        out: np.ndarray = np.maximum(flops_s, elements * wb / hbm)
        return out

    def dense(self, tokens: np.ndarray) -> np.ndarray:
        """Compute of one dense layer (attention projections and MLP, no attention core)."""
        model, plan = self.model, self.plan
        hbm, _, _, kernel_us = self._rates
        h, tp = model.hidden, plan.tp
        ta = tokens / plan.attention_dp
        attn = (model.attention_params - h) / tp
        out = self._linear(attn + (model.dense_mlp_params - h) / tp, ta)
        out += (10 * h + 3 * model.ffn_hidden / tp) * ACT_BYTES * ta / hbm
        out += KERNELS_PER_DENSE_LAYER * kernel_us * 1e-6
        return np.where(tokens > 0, out, 0.0)

    def moe(self, tokens: np.ndarray) -> np.ndarray:
        """Compute of one MoE layer: attention projections, shared and activated experts."""
        model, plan = self.model, self.plan
        assert model.moe is not None
        hbm, rate, m_half, kernel_us = self._rates
        moe, h, tp = model.moe, model.hidden, plan.tp
        wb = BYTES_PER_ELEMENT[self.precision]
        ta = tokens / plan.attention_dp
        etp = plan.tp * plan.attention_dp // plan.ep
        attn = (model.attention_params - h) / tp
        shared = moe.shared_experts * model._mlp_params(moe.shared_ffn) / tp
        out = self._linear(attn + shared, ta) + 10 * h * ACT_BYTES * ta / hbm
        physical, k = moe.experts + plan.redundant_experts, moe.top_k
        expert = model.expert_params / etp
        hit = 1.0 - np.power(1.0 - k / physical, tokens)
        expert_bytes = (physical / plan.ep) * hit * expert * wb
        rows = tokens * k / physical  # tokens per expert: the m of each grouped GEMM
        expert_flops_s = 2.0 * (tokens * k / plan.ep) * expert / (rate * _m_factor(rows, m_half))
        out += np.maximum(expert_flops_s, expert_bytes / hbm)
        out += (tokens * k / plan.ep) * 4 * h * ACT_BYTES / hbm  # permute / unpermute
        out += KERNELS_PER_MOE_LAYER * kernel_us * 1e-6
        return np.where(tokens > 0, out, 0.0)

    def tp_comm(self, tokens: np.ndarray) -> np.ndarray:
        """The two all-reduces of one layer."""
        plan, h = self.plan, self.model.hidden
        group = self._group("tp", plan.tp, 1)
        return 2 * self._collective("all_reduce", tokens * h * ACT_BYTES / plan.attention_dp, group)

    def ep_comm(self, tokens: np.ndarray) -> np.ndarray:
        """Dispatch and combine of one MoE layer."""
        model, plan = self.model, self.plan
        if self.dispatch == "none" or model.moe is None:
            return np.zeros_like(tokens)
        stage = plan.tp * plan.attention_dp
        etp = stage // plan.ep
        k, h = model.moe.top_k, model.hidden
        sent = tokens * k * h / stage  # each GPU sends its 1/tp share of its rank's tokens
        ep = plan.ep if plan.ep > 1 else stage
        if self.dispatch == "per_batch":
            fast = np.minimum(self._low_latency(sent, ep), self._all_to_all(sent, ep, etp))
            return np.where(tokens > 0, fast, 0.0)
        if self.dispatch == "low_latency":
            return np.where(tokens > 0, self._low_latency(sent, ep), 0.0)
        return self._all_to_all(sent, ep, etp)

    def _low_latency(self, sent: np.ndarray, ep: int) -> np.ndarray:
        """DeepEP low-latency dispatch (fp8 at fp8 weights) and bf16 combine of `sent`
        elements per GPU: bytes / the bandwidth measured at this EP size, at least the
        one-token latency measured at that size."""
        wb = BYTES_PER_ELEMENT[self.precision]
        kernel = low_latency_dispatch(self.cluster.chip.name)
        assert kernel is not None  # resolve_dispatch checked
        nic = self.cluster.nic_bytes_per_s_per_system / self.cluster.system.gpus
        d_bw = kernel.bandwidth_bytes_per_s("dispatch", ep, nic)
        c_bw = kernel.bandwidth_bytes_per_s("combine", ep, nic)
        dispatch = np.maximum(kernel.floor_s("dispatch", ep), sent * wb / d_bw)
        out: np.ndarray = dispatch + np.maximum(
            kernel.floor_s("combine", ep), sent * ACT_BYTES / c_bw
        )
        return out

    def _all_to_all(self, sent: np.ndarray, ep: int, etp: int) -> np.ndarray:
        """Dispatch and combine as all-to-all collectives on the placed EP group."""
        wb = BYTES_PER_ELEMENT[self.precision]
        group = self._group("ep", ep, etp if self.plan.ep > 1 else 1)
        both: np.ndarray = self._collective("all_to_all", sent * wb, group)
        both += self._collective("all_to_all", sent * ACT_BYTES, group)
        return both

    def pp_comm(self, tokens: np.ndarray) -> np.ndarray:
        plan, h = self.plan, self.model.hidden
        if plan.pp <= 1:
            return np.zeros_like(tokens)
        group = self._group("pp", plan.pp, plan.tp * plan.attention_dp)
        hop = self._collective("send_recv", tokens * h * ACT_BYTES / plan.attention_dp, group)
        return (plan.pp - 1) * hop

    def head(self, tokens: np.ndarray) -> np.ndarray:
        """Reading the output head once per iteration."""
        model, plan = self.model, self.plan
        hbm = self._rates[0]
        return np.where(tokens > 0, model.vocab * model.hidden / plan.tp * HEAD_BYTES / hbm, 0.0)

    def sample_s(self) -> float:
        """Output-head GEMM per sampled token (bf16 head, TensorRT-LLM fp8 recipes)."""
        chip, model, plan = self.cluster.chip, self.model, self.plan
        rate = chip.peak_flops("bf16") * matmul_fraction(chip, "bf16")
        rate *= chip.efficiency.sustained_clock_fraction
        return 2.0 * model.vocab * model.hidden / plan.tp / rate / plan.attention_dp

    def parts(self, tokens: np.ndarray, *, overlap: bool) -> dict[str, np.ndarray]:
        """Each part of base(T) over the model's layers, with or without two-batch overlap."""
        model = self.model
        lm = model.moe_layers if model.moe is not None else 0
        ld = model.layers - lm
        moe_c = self.moe(tokens) if lm else np.zeros_like(tokens)
        dense_c, tp, a2a = self.dense(tokens), self.tp_comm(tokens), self.ep_comm(tokens)
        plain = {
            "compute": ld * dense_c + lm * moe_c + self.head(tokens),
            "tp_comm": model.layers * tp,
            "ep_comm": lm * a2a,
            "pp_comm": self.pp_comm(tokens),
            "ep_comm_hidden": np.zeros_like(tokens),
        }
        if not overlap or not lm:
            return plain
        half = tokens / 2
        moe_h, tp_h, a2a_h = self.moe(half), self.tp_comm(half), self.ep_comm(half)
        busy = 2 * (moe_h + tp_h)  # both halves' compute and TP traffic of one MoE layer
        exposed = np.maximum(0.0, 2 * a2a_h - busy)
        tbo = {
            "compute": ld * 2 * self.dense(half) + lm * 2 * moe_h + self.head(tokens),
            "tp_comm": ld * 2 * self.tp_comm(half) + lm * 2 * tp_h,
            "ep_comm": lm * exposed,
            "pp_comm": 2 * self.pp_comm(half),
            "ep_comm_hidden": lm * (2 * a2a_h - exposed),
        }
        split = tokens >= 2  # one request cannot be split
        return {k: np.where(split, tbo[k], plain[k]) for k in plain}


def _attention_rates(
    model: ModelSpec, cluster: Cluster, *, attention_precision: str, query_rows: float
) -> tuple[float, float, float, float | None]:
    """(decode memory rate B/s, decode FLOP rate, prefill FLOP rate, MLA TFLOP/s or None);
    the decode FLOP rate counts the FLOPs asked for, so FlashMLA's padding of fewer than 64
    query rows per block lowers it."""
    chip = cluster.chip
    eff = chip.efficiency
    hbm = chip.hbm_bandwidth_bytes_per_s * eff.memory_fraction
    attn_rate = chip.peak_flops("bf16") * eff.attention_fraction * eff.sustained_clock_fraction
    fp8 = fp8_attention_kernel(chip.name)
    if attention_precision == "fp8" and fp8 is not None:
        attn_rate *= fp8.speedup
    mla = mla_decode_kernel(chip.name) if model.mla is not None else None
    if mla is None:
        return hbm, attn_rate, attn_rate, None
    flops = chip.peak_flops("bf16") * mla.compute_share  # measured under throttling
    useful = flops / mla.padding(query_rows)
    return chip.hbm_bandwidth_bytes_per_s * mla.memory_share, useful, attn_rate, flops / 1e12


def _attention_costs(
    model: ModelSpec,
    plan: PlanSpec,
    cluster: Cluster,
    *,
    kv_precision: str,
    attention_precision: str,
    query_tokens: int,
) -> tuple[float, float, float | None]:
    """(decode s per context token, prefill s per causal pair, MLA TFLOP/s) of an instance."""
    heads = model.heads / plan.tp
    mem_rate, decode_rate, prefill_rate, mla_tflops = _attention_rates(
        model, cluster, attention_precision=attention_precision, query_rows=heads * query_tokens
    )
    kv_bytes = kv_bytes_per_token_layer_per_gpu(model, plan.tp, kv_precision)
    if model.mla is not None:
        m = model.mla
        kv_flops = 2.0 * heads * (2 * m.kv_lora_rank + m.qk_rope_head_dim)  # absorbed MLA
        d_qk, d_v = m.qk_nope_head_dim + m.qk_rope_head_dim, m.v_head_dim
    else:
        kv_flops = 4.0 * heads * model.d_head
        d_qk = d_v = model.d_head
    per_layer = max(kv_bytes / mem_rate, query_tokens * kv_flops / decode_rate)
    kv_s = model.layers * per_layer / plan.attention_dp
    pair_s = model.layers * 2.0 * heads * (d_qk + d_v) / prefill_rate / plan.attention_dp
    return kv_s, pair_s, mla_tflops


def build_step_model(
    model: ModelSpec,
    plan: PlanSpec,
    cluster: Cluster,
    *,
    precision: str,
    kv_precision: str,
    max_tokens: int,
    iteration_overhead_s: float,
    request_overhead_s: float = 0.0,
    attention_precision: str = "bf16",
    dispatch: str = "all_to_all",
    speculation: Speculation | None = None,
    max_requests: int = 0,
    decodes: bool = True,
) -> StepModel:
    """Tabulate the iteration time of one engine for 0..max_tokens tokens.

    Args:
        precision: weight/GEMM precision (the chip must support it).
        kv_precision: KV-cache precision.
        max_tokens: largest iteration the table covers (larger ones extrapolate).
        iteration_overhead_s: host time per iteration not hidden behind the GPU.
        request_overhead_s: host time per sampled request per iteration.
        attention_precision: bf16 or fp8 attention math (`resolve_attention_precision`).
        dispatch: MoE dispatch kernels (`resolve_dispatch`).
        speculation: speculative decoding, or None.
        max_requests: most decoding requests per iteration (the draft table's length).
        decodes: False for a prefill pool, which only runs the drafter over prompts.
    Raises:
        SpecError: a parallel group does not tile the pool's cluster.
    """
    tokens = np.arange(max_tokens + 1, dtype=np.float64)
    layers = _Layers(
        model=model,
        plan=plan,
        cluster=cluster,
        comm=CommModel(cluster),
        precision=precision,
        dispatch=dispatch,
    )
    parts = layers.parts(tokens, overlap=plan.two_batch_overlap)
    parts["overhead"] = np.where(tokens > 0, iteration_overhead_s, 0.0)
    base = sum((parts[p] for p in PARTS), np.zeros_like(tokens))
    sample_s = layers.sample_s() + request_overhead_s
    q = speculation.query_tokens if speculation is not None and decodes else 1
    kv_s, pair_s, mla_tflops = _attention_costs(
        model,
        plan,
        cluster,
        kv_precision=kv_precision,
        attention_precision=attention_precision,
        query_tokens=q,
    )
    draft, prompt_s = np.zeros(1), 0.0
    if speculation is not None:
        costs = _draft_costs(
            layers,
            speculation,
            max_requests=max(max_requests, 1),
            kv_precision=kv_precision,
            attention_precision=attention_precision,
        )
        prompt_s, pair_s = costs.prompt_s_per_token, pair_s + costs.prompt_s_per_pair
        if decodes:
            draft, kv_s = costs.per_iteration_s, kv_s + costs.kv_s_per_token
    return StepModel(
        base_s=base,
        sample_s=sample_s,
        kv_s_per_token=kv_s,
        prefill_s_per_pair=pair_s,
        parts_s=parts,
        draft_s=draft,
        query_tokens=q,
        prompt_draft_s_per_token=prompt_s,
        accepted_tokens=speculation.accepted_tokens if speculation is not None and decodes else 1.0,
        dispatch=dispatch,
        attention_precision=attention_precision,
        mla_decode_tflops=mla_tflops,
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class _DraftCosts:
    per_iteration_s: np.ndarray  # [b] by decoding requests
    kv_s_per_token: float  # decode attention of the drafter, per context token
    prompt_s_per_token: float  # the drafter's pass over a prompt token (compute-bound)
    prompt_s_per_pair: float  # its attention over the prompt, per causal pair


def _slope(curve: np.ndarray, n: int) -> float:
    """Marginal seconds per token of a curve tabulated on 0..len-1, at its top half."""
    top = min(n, len(curve) - 1)
    half = max(top // 2, 1)
    return float((curve[top] - curve[half]) / max(top - half, 1))


def _draft_costs(
    layers: _Layers,
    spec: Speculation,
    *,
    max_requests: int,
    kv_precision: str,
    attention_precision: str,
) -> _DraftCosts:
    """What the drafter adds: per decode iteration, per context token, per prompt token.

    The drafter runs d steps of one token per request, then one extend pass over the
    1 + d verified tokens (SGLang's EAGLE worker: draft, verify, draft-extend); prompts
    pass through it once (draft extend after prefill, on prefill pools too). MTP's
    module is one layer of the model's own kind plus a 2h→h projection sharing the head
    (DeepSeek-V3 Sec. 2.2); an EAGLE head is one dense layer (Li et al. 2024); a draft
    model is a whole model on the same tp and attention-dp ranks. Each pass launches its
    kernels; the host overhead of an iteration is paid once, by the model's own pass
    (CUDA graphs capture the draft steps).
    """
    b = np.arange(max_requests + 1, dtype=np.float64)
    d, q = spec.draft_tokens, spec.query_tokens
    plan, model = layers.plan, layers.model
    if spec.method == "draft":
        assert spec.draft_model is not None
        dplan = plan.model_copy(
            update={"ep": 1, "pp": 1, "redundant_experts": 0, "two_batch_overlap": False}
        )
        drafter = build_step_model(
            spec.draft_model,
            dplan,
            layers.cluster,
            precision=layers.precision,
            kv_precision=kv_precision,
            max_tokens=int(b[-1]) * q,
            iteration_overhead_s=0.0,
            attention_precision=attention_precision,
            dispatch=resolve_dispatch(dplan, layers.cluster, role="decode"),
        )

        def one_pass(tokens: np.ndarray) -> np.ndarray:
            out: np.ndarray = np.interp(tokens, np.arange(len(drafter.base_s)), drafter.base_s)
            return out + drafter.sample_s * tokens

        cost = d * one_pass(b) + one_pass(b * q)
        return _DraftCosts(
            per_iteration_s=np.where(b > 0, cost, 0.0),
            kv_s_per_token=(d + 1) * drafter.kv_s_per_token,
            prompt_s_per_token=_slope(drafter.base_s, len(drafter.base_s) - 1),
            prompt_s_per_pair=drafter.prefill_s_per_pair,
        )

    moe_layer = spec.method == "mtp" and model.moe is not None
    h = model.hidden
    kernel_us = layers.cluster.chip.efficiency.kernel_overhead_us

    def draft_pass(tokens: np.ndarray) -> np.ndarray:
        core = layers.moe(tokens) + layers.ep_comm(tokens) if moe_layer else layers.dense(tokens)
        out: np.ndarray = core + layers.tp_comm(tokens) + layers.head(tokens)
        out += layers._linear(2.0 * h * h / plan.tp, tokens / plan.attention_dp)
        out += layers.sample_s() * tokens + KERNELS_PER_DRAFT_STEP * kernel_us * 1e-6
        return out

    cost = d * draft_pass(b) + draft_pass(b * q)
    one_layer_kv, pair_s, _ = _attention_costs(
        model,
        plan,
        layers.cluster,
        kv_precision=kv_precision,
        attention_precision=attention_precision,
        query_tokens=1,
    )
    n = 8192  # a prefill-sized pass: the layer is compute-bound there
    grid = np.arange(n + 1, dtype=np.float64)
    core = layers.moe(grid) + layers.ep_comm(grid) if moe_layer else layers.dense(grid)
    core = (
        core
        + layers.tp_comm(grid)
        + layers._linear(2.0 * h * h / plan.tp, grid / plan.attention_dp)
    )
    return _DraftCosts(
        per_iteration_s=np.where(b > 0, cost, 0.0),
        kv_s_per_token=(d + 1) * one_layer_kv / model.layers,
        prompt_s_per_token=_slope(core, n),
        prompt_s_per_pair=pair_s / model.layers,
    )
