"""The `serving:` section of a scenario: what a deployment serves, how, and within which SLOs.

A deployment runs `dp` identical model instances ("replicas"). One instance spans
tp · attention_dp GPUs per pipeline stage and pp stages. Attention (and the dense layers)
are split tp-ways and replicated attention_dp-ways, each attention-dp rank holding its own
requests and KV cache (SGLang's DP attention for latent-attention models, whose single
latent KV head cannot be split by tp); the routed experts of a mixture-of-experts model are
spread ep-ways over the tp · attention_dp GPUs of a stage (expert tensor parallelism
tp·attention_dp/ep). With `disaggregation`, prefill and decode run on separate pools of
GPUs (DistServe, Zhong et al. 2024; Splitwise, Patel et al. 2024), each with its own plan,
and the KV cache of each prompt crosses the fabric between them.

Checks that need the model or the cluster (tp divides the heads, the pools fit the cluster)
live in `superscale.inference.deploy.resolve`, which names the field path of each mistake.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from superscale.spec import MAX_REQUESTS, MAX_SECONDS, MAX_SEQ_LEN, Spec

ServePrecision = Literal["auto", "bf16", "fp16", "fp8", "fp4", "int8"]
WeightFormat = Literal["int8", "int4", "fp8", "fp4"]
KvPrecision = Literal["auto", "bf16", "fp16", "fp8", "int8", "fp4", "int4", "int2"]
Distribution = Literal["fixed", "uniform", "exponential", "lognormal"]


class LengthSpec(Spec):
    """Token counts of prompts or outputs: a fixed number or a distribution (integers >= 1).

    A bare integer in YAML means `{distribution: fixed, mean: N}`.
    """

    distribution: Distribution = Field("fixed", description="Shape of the distribution.")
    mean: float = Field(
        gt=0, le=MAX_SEQ_LEN, description="Mean tokens (before clipping to [min, max])."
    )
    min: int = Field(1, ge=1, le=MAX_SEQ_LEN, description="Smallest length, tokens.")
    max: int | None = Field(
        None, ge=1, le=MAX_SEQ_LEN, description="Largest length, tokens; None: no cap."
    )
    sigma: float = Field(1.0, gt=0, description="Log-space standard deviation (lognormal only).")

    @model_validator(mode="before")
    @classmethod
    def _from_int(cls, data: Any) -> Any:
        if isinstance(data, int | float) and not isinstance(data, bool):
            return {"distribution": "fixed", "mean": data}
        return data

    @model_validator(mode="after")
    def _bounds(self) -> LengthSpec:
        if self.max is not None and self.max < self.min:
            raise ValueError(f"max ({self.max}) must be >= min ({self.min})")
        return self


class WorkloadSpec(Spec):
    """Which requests arrive, and when."""

    arrival: Literal["poisson", "offline", "trace", "closed"] = Field(
        "poisson",
        description="poisson: exponential gaps at rate_per_s; offline: every request "
        "waits at t=0 (MLPerf Offline, request rate inf); trace: a CSV of arrival_s, "
        "prompt_tokens, output_tokens; closed: `users` clients, each sending its next "
        "request think_time_s after its previous one completes (vLLM bench "
        "--max-concurrency, GenAI-Perf --concurrency).",
    )
    users: int | None = Field(
        None, gt=0, le=MAX_REQUESTS, description="Concurrent clients (arrival: closed)."
    )
    think_time_s: float = Field(
        0.0,
        ge=0,
        le=MAX_SECONDS,
        description="Pause between a client's completed request and its next, s (closed).",
    )
    rate_per_s: float | None = Field(
        None, gt=0, le=1e7, description="Requests per second (poisson)."
    )
    trace: str | None = Field(
        None, description="Trace CSV path, relative to the scenario file (arrival: trace)."
    )
    prompt_tokens: LengthSpec = Field(
        default_factory=lambda: LengthSpec(mean=512), description="Prompt length, tokens."
    )
    output_tokens: LengthSpec = Field(
        default_factory=lambda: LengthSpec(mean=256), description="Output length, tokens."
    )
    requests: int | None = Field(
        None,
        gt=0,
        le=MAX_REQUESTS,
        description="Requests to simulate; default 2000 unless duration_s is given.",
    )
    duration_s: float | None = Field(
        None,
        gt=0,
        le=MAX_SECONDS,
        description="Simulate arrivals over this many seconds instead (poisson).",
    )
    seed: int = Field(0, ge=0, description="Seed of the arrival and length generator.")

    @model_validator(mode="after")
    def _consistent(self) -> WorkloadSpec:
        if self.arrival == "poisson" and self.rate_per_s is None:
            raise ValueError("arrival 'poisson' needs rate_per_s")
        if self.arrival == "trace" and not self.trace:
            raise ValueError("arrival 'trace' needs trace: path/to/requests.csv")
        if self.arrival != "trace" and self.trace:
            raise ValueError(f"trace is given but arrival is '{self.arrival}' (use 'trace')")
        if self.requests is not None and self.duration_s is not None:
            raise ValueError("give requests or duration_s, not both")
        if self.duration_s is not None and self.arrival != "poisson":
            raise ValueError("duration_s needs arrival 'poisson'")
        if self.arrival == "closed" and self.users is None:
            raise ValueError("arrival 'closed' needs users: the number of concurrent clients")
        if self.arrival == "closed" and self.rate_per_s is not None:
            raise ValueError(
                "rate_per_s is for arrival 'poisson'; a closed loop's rate follows "
                "from users and latency"
            )
        if self.arrival != "closed" and (self.users is not None or self.think_time_s):
            raise ValueError(
                f"users and think_time_s are for arrival 'closed', not '{self.arrival}'"
            )
        return self


class SchedulerSpec(Spec):
    """Continuous batching (Orca, Yu et al. 2022) with a token budget per iteration."""

    max_batch_tokens: int = Field(
        8192, gt=0, description="Token budget of one iteration (decode + prefill tokens)."
    )
    max_batch: int = Field(256, gt=0, description="Most requests running at once per engine.")
    chunked_prefill: bool = Field(
        True,
        description="Split prompts into chunks that share iterations with decode "
        "(Sarathi-Serve, Agrawal et al. 2024); false: prefill-only iterations pause decode.",
    )
    prefix_cache_hit_rate: float = Field(
        0.0, ge=0, lt=1, description="Share of prompt tokens found in the prefix cache."
    )
    gpu_memory_utilization: float = Field(
        0.90, gt=0, le=1, description="Share of HBM the engine may use (vLLM's default 0.9)."
    )
    iteration_overhead_us: float = Field(
        300.0,
        ge=0,
        description="Host time per iteration not hidden behind the GPU (scheduling, "
        "sampling, launch), µs.",
    )
    request_overhead_us: float = Field(
        0.0,
        ge=0,
        description="Host time per running request per iteration not hidden behind the GPU "
        "(Python schedulers and detokenizers without an overlapped scheduler), µs.",
    )


class FfnDisaggregationSpec(Spec):
    """Routed experts on GPUs of their own, apart from attention (attention/FFN
    disaggregation: MegaScale-Infer, Zhu et al. 2025; Huawei xDeepServe on CloudMatrix384).

    Each MoE layer sends every micro-batch's tokens from the attention GPUs to the expert
    GPUs and the results back; micro-batches take turns (ping-pong) so one's transfers and
    expert compute run while another attends.
    """

    ffn_gpus: int = Field(
        gt=0, description="Expert GPUs per instance; the routed experts are spread ep-ways."
    )
    micro_batches: int = Field(
        2, ge=1, le=16, description="Micro-batches in flight between the two sides (ping-pong)."
    )


class PlanSpec(Spec):
    """How one pool of GPUs is split into model instances."""

    tp: int = Field(1, gt=0, description="Tensor-parallel size (attention and dense layers).")
    pp: int = Field(1, gt=0, description="Pipeline stages per instance.")
    ep: int = Field(
        1, gt=0, description="Expert-parallel size over the tp·attention_dp GPUs of a stage."
    )
    attention_dp: int = Field(
        1, gt=0, description="Attention data-parallel ranks per instance (latent attention)."
    )
    dp: int | None = Field(
        None, gt=0, description="Instances; default: the pool's GPUs / (tp·pp·attention_dp)."
    )
    redundant_experts: int = Field(
        0,
        ge=0,
        description="Extra copies of hot experts spread over the EP group (DeepSeek's EPLB), "
        "so experts + redundant_experts is what ep must divide (DeepSeek-V3 prefill: 32).",
    )
    two_batch_overlap: bool = Field(
        False,
        description="Split each batch in two and run one half's MoE dispatch/combine while "
        "the other computes (SGLang --enable-two-batch-overlap; off by default).",
    )
    moe_dispatch: Literal["auto", "all_to_all", "low_latency"] = Field(
        "auto",
        description="MoE dispatch/combine kernels: all_to_all (the collective on the "
        "topology), low_latency (DeepEP's decode kernels, measured per chip); auto: "
        "low_latency for decode and mixed pools whose EP group crosses the scale-out "
        "network on a chip with measured kernels (SGLang --deepep-mode auto), else all_to_all.",
    )

    ffn_disaggregation: FfnDisaggregationSpec | None = Field(
        None,
        description="Attention/FFN disaggregation: routed experts on ffn_gpus GPUs of their "
        "own per instance (ep = ffn_gpus), activations crossing between the two each MoE "
        "layer; null: experts on the attention GPUs.",
    )

    @field_validator("ffn_disaggregation", mode="before")
    @classmethod
    def _null(cls, value: Any) -> Any:
        return None if value in ({}, "none") else value

    @model_validator(mode="after")
    def _ep_divides_stage(self) -> PlanSpec:
        stage = self.tp * self.attention_dp
        ffn = self.ffn_disaggregation
        if ffn is not None:
            if self.ep != ffn.ffn_gpus:
                raise ValueError(
                    f"ep ({self.ep}) must equal ffn_disaggregation.ffn_gpus ({ffn.ffn_gpus}): "
                    "each expert GPU holds whole experts"
                )
            if self.pp > 1 or self.two_batch_overlap:
                raise ValueError(
                    "ffn_disaggregation needs pp 1 and two_batch_overlap false (its "
                    "micro-batches overlap the transfers)"
                )
            return self
        if stage % self.ep:
            raise ValueError(
                f"ep ({self.ep}) must divide tp·attention_dp = {self.tp}·{self.attention_dp}"
            )
        return self

    @property
    def attention_gpus(self) -> int:
        """GPUs holding attention and the KV cache, all stages."""
        return self.tp * self.pp * self.attention_dp

    @property
    def ffn_gpus(self) -> int:
        return 0 if self.ffn_disaggregation is None else self.ffn_disaggregation.ffn_gpus

    @property
    def instance_gpus(self) -> int:
        return self.attention_gpus + self.ffn_gpus


class DisaggregationSpec(Spec):
    """Separate prefill and decode pools; the KV cache moves from one to the other."""

    prefill_gpus: int = Field(gt=0, description="GPUs of the prefill pool.")
    decode_gpus: int = Field(gt=0, description="GPUs of the decode pool.")
    prefill_plan: PlanSpec | None = Field(None, description="Default: serving.plan.")
    decode_plan: PlanSpec | None = Field(None, description="Default: serving.plan.")
    prefill_max_batch_tokens: int | None = Field(
        None,
        gt=0,
        description="Token budget of a prefill iteration; default scheduler.max_batch_tokens.",
    )


class SloSpec(Spec):
    """Latency targets a request must meet to count towards goodput."""

    ttft_p99_s: float | None = Field(None, gt=0, description="Time to first token, p99, s.")
    tpot_p99_s: float | None = Field(None, gt=0, description="Time per output token, p99, s.")


class SpeculativeSpec(Spec):
    """Speculative decoding: a cheap drafter proposes tokens the model verifies in one pass.

    Each decode iteration a request runs 1 + draft_tokens query tokens through the model and
    keeps the accepted prefix plus one token: with a per-token acceptance rate a, on average
    (1 − a^(d+1)) / (1 − a) tokens (Leviathan et al. 2023, eq. 1).
    """

    method: Literal["mtp", "eagle", "draft"] = Field(
        description="mtp: the model's own multi-token-prediction layer (DeepSeek-V3 Sec. "
        "2.2); eagle: a one-layer draft head on the model's features (Li et al. 2024); "
        "draft: a separate small model (draft_model)."
    )
    draft_tokens: int = Field(1, ge=1, le=16, description="Tokens drafted per iteration.")
    acceptance_rate: float | None = Field(
        None,
        ge=0,
        le=1,
        description="Chance each drafted token is accepted, given the previous one was. "
        "Default for mtp 0.85 (DeepSeek-V3 report Sec. 5.4.3: 85-90% for the second "
        "token); eagle and draft have no default (it depends on the drafter and the data).",
    )
    draft_model: str | None = Field(
        None, description="Catalog model that drafts (method: draft only)."
    )

    @model_validator(mode="after")
    def _consistent(self) -> SpeculativeSpec:
        if self.method == "draft" and self.draft_model is None:
            raise ValueError("method 'draft' needs draft_model: a catalog model name")
        if self.method != "draft" and self.draft_model is not None:
            raise ValueError(f"draft_model is only for method 'draft', not '{self.method}'")
        if self.method != "mtp" and self.acceptance_rate is None:
            raise ValueError(
                f"method '{self.method}' needs acceptance_rate (0-1); only mtp has a "
                "published default"
            )
        return self

    @property
    def acceptance(self) -> float:
        return 0.85 if self.acceptance_rate is None else self.acceptance_rate


class QuantizationSpec(Spec):
    """Weights stored narrower than the GEMM math and widened inside the kernel.

    Weight-only quantisation (GPTQ, Frantar et al. 2023; AWQ, Lin et al. 2024) keeps int4 or
    int8 weights in groups of `group_size` along the input dimension, each group with an
    fp16 scale and, when asymmetric, a zero point of the weight's width; the GEMM runs at
    `serving.precision` (bf16 for W4A16). W8A8 int8 needs no section: `precision: int8`.
    """

    weights: WeightFormat = Field(
        description="Stored weight format: int4 | int8 (GPTQ/AWQ) | fp8 | fp4; must be "
        "narrower than serving.precision."
    )
    group_size: int = Field(
        128,
        ge=0,
        le=1 << 20,
        description="Weights sharing one scale (GPTQ/AWQ default 128); 0: one scale per "
        "output channel (its bytes are negligible and not counted).",
    )
    zero_point: bool = Field(
        True, description="Asymmetric groups carry a zero point of the weight's width."
    )


class ServingSpec(Spec):
    """A deployment: precision, plan, workload, scheduler, optional disaggregation, SLOs."""

    precision: ServePrecision = Field(
        "auto",
        description="GEMM math and, without quantization, the weights; int8 is W8A8 (int8 "
        "weights and activations, the chip's int8 peak); auto: fp8 where the chip has it, "
        "else bf16.",
    )
    quantization: QuantizationSpec | None = Field(
        None,
        description="Weight-only quantisation (weights stored narrower than the GEMM "
        "precision, e.g. GPTQ/AWQ int4 with bf16 GEMMs); null: weights at `precision`.",
    )
    kv_precision: KvPrecision = Field(
        "auto",
        description="KV cache; auto: fp8 with fp8/fp4 GEMMs, else bf16. int8/int4/int2: "
        "asymmetric groups of kv_group_size with an fp16 scale and zero point each (KIVI, "
        "Liu et al. 2024); fp4: NVFP4, one fp8 scale per 16 elements (Blackwell).",
    )
    kv_group_size: int = Field(
        32,
        ge=1,
        le=1 << 16,
        description="Cached elements sharing one scale and zero point for int8/int4/int2 "
        "KV (KIVI's group size 32).",
    )
    attention_precision: Literal["auto", "bf16", "fp8"] = Field(
        "auto",
        description="Attention math; auto: fp8 with an fp8 KV cache on chips with a "
        "measured fp8 attention kernel (inference/kernels.yaml), else bf16.",
    )
    plan: PlanSpec = Field(default_factory=PlanSpec, description="The aggregated plan.")
    workload: WorkloadSpec = Field(
        default_factory=lambda: WorkloadSpec(arrival="offline"), description="The requests."
    )
    scheduler: SchedulerSpec = Field(default_factory=SchedulerSpec)
    disaggregation: DisaggregationSpec | None = Field(
        None, description="Prefill/decode pools; null: every instance does both."
    )
    slo: SloSpec = Field(default_factory=SloSpec)
    speculative: SpeculativeSpec | None = Field(
        None, description="Speculative decoding; null: one token per request per iteration."
    )

    @field_validator("disaggregation", "speculative", "quantization", mode="before")
    @classmethod
    def _null(cls, value: Any) -> Any:
        return None if value in ({}, "none") else value
