"""Time of one serving iteration: prefill and decode tokens batched together.

An iteration runs T tokens (decode tokens of the running requests plus prefill chunks)
through every layer of an instance; `layers.py` prices each layer (roofline GEMMs, MoE
experts hit, attention by context, tensor/expert/pipeline traffic, two-batch overlap).

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
from superscale.hardware.spec import Cluster
from superscale.inference.layers import LayerCosts, attention_costs, resolve_dispatch
from superscale.models.spec import ModelSpec
from superscale.scenario.serving import PlanSpec

KERNELS_PER_DRAFT_STEP = 4  # projection, norms, head, sampling beside the draft layer
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
    weight_bytes: float | None = None,
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
        weight_bytes: stored bytes per weight (quantised weights); default the precision's.
    Raises:
        SpecError: a parallel group does not tile the pool's cluster.
    """
    tokens = np.arange(max_tokens + 1, dtype=np.float64)
    layers = LayerCosts(
        model=model,
        plan=plan,
        cluster=cluster,
        comm=CommModel(cluster),
        precision=precision,
        dispatch=dispatch,
        weight_bytes=weight_bytes,
    )
    parts = layers.parts(tokens, overlap=plan.two_batch_overlap)
    parts["overhead"] = np.where(tokens > 0, iteration_overhead_s, 0.0)
    base = sum((parts[p] for p in PARTS), np.zeros_like(tokens))
    sample_s = layers.sample_s() + request_overhead_s
    q = speculation.query_tokens if speculation is not None and decodes else 1
    kv_s, pair_s, mla_tflops = attention_costs(
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
    layers: LayerCosts,
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
            weight_bytes=layers.weight_bytes,
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
    launches = layers._memory(0.0, KERNELS_PER_DRAFT_STEP)  # the step's small kernels

    def draft_pass(tokens: np.ndarray) -> np.ndarray:
        core = layers.moe(tokens) + layers.ep_comm(tokens) if moe_layer else layers.dense(tokens)
        out: np.ndarray = core + layers.tp_comm(tokens) + layers.head(tokens)
        out += layers.linear(2.0 * h * h / plan.tp, tokens / plan.attention_dp)
        out += layers.sample_s() * tokens + launches
        return out

    cost = d * draft_pass(b) + draft_pass(b * q)
    one_layer_kv, pair_s, _ = attention_costs(
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
        core + layers.tp_comm(grid) + layers.linear(2.0 * h * h / plan.tp, grid / plan.attention_dp)
    )
    return _DraftCosts(
        per_iteration_s=np.where(b > 0, cost, 0.0),
        kv_s_per_token=(d + 1) * one_layer_kv / model.layers,
        prompt_s_per_token=_slope(core, n),
        prompt_s_per_pair=pair_s / model.layers,
    )
