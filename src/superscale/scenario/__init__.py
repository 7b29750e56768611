"""The top-level request: model + cluster + workload + parallel plan, and its loader.

`load_scenario(path_or_dict)` reads YAML through `superscale.readers` (regular files only,
a size cap, bounded depth, values and aliases, no duplicate keys; nothing is executed),
resolves catalog names, and validates everything into a frozen `Scenario`. Every mistake becomes a
`SpecError` naming the field path, the bad value and what is allowed.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, ValidationError, field_validator, model_validator

from superscale.errors import SpecError
from superscale.hardware.spec import Cluster
from superscale.models.spec import ModelSpec
from superscale.readers import (
    MAX_ALIASES,
    MAX_JSON_BYTES,
    MAX_SCENARIO_BYTES,
    load_yaml_text,
    read_json,
    read_yaml,
)
from superscale.scenario.facility import FacilitySpec
from superscale.scenario.layout import plan_layout
from superscale.scenario.rules import hsdp_problem, plan_problem
from superscale.scenario.serving import ServingSpec
from superscale.schedules import schedules
from superscale.spec import (
    MAX_BATCH,
    MAX_GPUS,
    MAX_LAYERS,
    MAX_SEQ_LEN,
    MAX_TOKENS,
    Spec,
    spec_error_from,
)

MAX_YAML_ALIASES = MAX_ALIASES

TrainPrecision = Literal["bf16", "fp16", "fp8"]
CudaGraphScope = Literal["attn", "mlp", "moe_router", "moe_preprocess", "full_iteration"]
RecomputeModule = Literal[
    "core_attn", "layernorm", "mla_up_proj", "moe_act", "mlp", "moe", "shared_experts"
]


class DocumentMask(Spec):
    """Causal attention inside each document of a packed sequence (Llama 3)."""

    mean_doc_tokens: int = Field(
        gt=0, le=MAX_SEQ_LEN, description="Mean document length in a packed sequence, tokens."
    )
    length_cv: float = Field(
        0.0,
        ge=0.0,
        le=16.0,
        description="Coefficient of variation of document lengths: Σ d² = s·mean·(1 + cv²), "
        "at most s²; 0 = equal documents (the least attention work), 1 ~ exponential.",
    )

    @property
    def square_share(self) -> float:
        """Σ d² / s for a packed sequence of s tokens: E[d²]/E[d] = mean·(1 + cv²)."""
        return self.mean_doc_tokens * (1.0 + self.length_cv**2)


class Bf16Layers(Spec):
    """Transformer layers kept in bf16 under fp8 or fp4 training (Megatron-LM's
    --first-last-layers-bf16; its counts default to 1 each)."""

    start: int = Field(
        1, ge=0, le=MAX_LAYERS, description="First layers in bf16 (--num-layers-at-start-in-bf16)."
    )
    end: int = Field(
        1, ge=0, le=MAX_LAYERS, description="Last layers in bf16 (--num-layers-at-end-in-bf16)."
    )


class TrainingSpec(Spec):
    """What one training step processes."""

    seq_len: int = Field(gt=0, le=MAX_SEQ_LEN, description="Tokens per sequence.")
    global_batch: int = Field(gt=0, le=MAX_BATCH, description="Sequences per optimizer step.")
    precision: TrainPrecision = Field("bf16", description="Matmul precision.")
    images_per_sample: int = Field(
        0, ge=0, le=4096, description="Images per sequence for multimodal models (vision encoder)."
    )
    dropout: bool = Field(
        False, description="Dropout on (Megatron GPT: 0.1): stores 1-byte masks, adds kernels."
    )
    tokens: float | None = Field(
        None,
        gt=0,
        le=MAX_TOKENS,
        description="Tokens of the whole run, for time, energy and cost to train.",
    )
    fp8_recipe: Literal["delayed", "current", "blockwise", "mxfp8", "nvfp4"] = Field(
        "delayed",
        description="How fp8 GEMM inputs are scaled (Transformer Engine): delayed (amax "
        "history), current (per-tensor, one more read: Megatron-Bridge FP8-CS), blockwise "
        "(DeepSeek-V3: 1x128 activations, 128x128 weights), mxfp8 (Blackwell's 1x32 "
        "microscaling, FP8-MX) or nvfp4 (NVIDIA's FP4 recipe: transformer-layer GEMMs in "
        "E2M1 with an E4M3 scale per 16 elements and a per-tensor fp32 scale, at the chip's "
        "fp4 peak). Only with precision fp8.",
    )
    adam_moments: Literal["fp32", "bf16"] = Field(
        "fp32",
        description="Dtype of AdamW's two moments; fp32 master weights stay (DeepSeek-V3 "
        "Sec. 3.3.3 keeps bf16 moments: 8 instead of 12 optimizer bytes per parameter).",
    )
    fp8_activations: bool = Field(
        False,
        description="Keep the inputs of the attention out-projection, the MoE up-projection "
        "and the SwiGLU in fp8 for backward (DeepSeek-V3 Sec. 3.3.2); needs precision fp8.",
    )

    bf16_layers: Bf16Layers | None = Field(
        None,
        description="Keep the first `start` and last `end` transformer layers' GEMMs in bf16, "
        "without quantize traffic, under fp8/fp4 training (Megatron-LM "
        "--first-last-layers-bf16); needs precision fp8 and a per-layer recipe (current, "
        "blockwise, mxfp8, nvfp4). None = every layer in the low precision.",
    )
    document_mask: DocumentMask | None = Field(
        None,
        description="Packed sequences whose attention is masked to each document "
        "(mean_doc_tokens, length_cv): the kernel's work scales with Σ doc_len², the FLOP "
        "count keeps the full-sequence convention. None = one causal sequence.",
    )

    @property
    def document_square_share(self) -> float:
        """Σ doc_len² / seq_len² of one packed sequence (1 without document masking)."""
        if self.document_mask is None:
            return 1.0
        return min(1.0, self.document_mask.square_share / self.seq_len)

    @model_validator(mode="after")
    def _documents_fit(self) -> TrainingSpec:
        mask = self.document_mask
        if mask is not None and mask.mean_doc_tokens > self.seq_len:
            raise ValueError(
                f"training.document_mask.mean_doc_tokens ({mask.mean_doc_tokens}) exceeds "
                f"seq_len ({self.seq_len})"
            )
        return self

    @model_validator(mode="after")
    def _fp8_recipe_needs_fp8(self) -> TrainingSpec:
        if self.fp8_recipe != "delayed" and self.precision != "fp8":
            raise ValueError(f"training.fp8_recipe needs precision fp8 (got {self.precision})")
        return self

    @field_validator("bf16_layers")
    @classmethod
    def _bf16_layers_need_fp8(cls, value: Bf16Layers | None, info: Any) -> Bf16Layers | None:
        precision, recipe = info.data.get("precision"), info.data.get("fp8_recipe")
        if value is None or precision is None or recipe is None:
            return value  # an earlier field failed and is reported
        if precision != "fp8":
            raise ValueError(f"needs precision fp8 (fp8 or fp4 training), got {precision}")
        if recipe == "delayed":  # Megatron-Core's TransformerConfig refuses it too
            raise ValueError(
                "delayed scaling cannot keep layers in bf16 (its amax history is shared "
                "across layers); set training.fp8_recipe to current, blockwise, mxfp8 or nvfp4"
            )
        return value

    @model_validator(mode="after")
    def _fp8_storage_needs_fp8(self) -> TrainingSpec:
        if self.fp8_activations and self.precision != "fp8":
            raise ValueError(f"training.fp8_activations needs precision fp8 (got {self.precision})")
        return self


class FsdpSpec(Spec):
    """PyTorch FSDP2 as TorchTitan runs it: full sharding of weights, gradients and
    optimizer states (ZeRO-3), optionally hybrid (HSDP)."""

    reshard_after_forward: bool = Field(
        True,
        description="Free each layer's gathered weights after its forward and gather them "
        "again in backward (FSDP2's default: 2 all-gathers and 1 reduce-scatter per layer); "
        "false keeps them to the backward (1 all-gather, the stage's whole weights live).",
    )
    shard_group: int | None = Field(
        None,
        gt=0,
        le=MAX_GPUS,
        description="HSDP: GPUs one copy of the weights is sharded over (inside dp·cp); the "
        "dp·cp/shard_group copies all-reduce their gradient shards. Default: all of dp·cp.",
    )
    prefetch: int = Field(
        1,
        ge=0,
        le=16,
        description="Layers whose all-gather is issued ahead of the one computing; 0 "
        "exposes each gather, and prefetch + 1 gathered layers are live at once.",
    )


class ParallelSpec(Spec):
    """How the step is split across GPUs. dp is derived: gpus / (tp·pp·cp)."""

    tp: int = Field(1, gt=0, le=MAX_GPUS, description="Tensor-parallel size.")
    pp: int = Field(1, gt=0, le=MAX_GPUS, description="Pipeline-parallel stages.")
    cp: int = Field(1, gt=0, le=MAX_GPUS, description="Context-parallel size (sequence split).")
    ep: int = Field(
        1, gt=0, le=MAX_GPUS, description="Expert-parallel size (MoE), carved out of tp·cp·dp."
    )
    dp: int | None = Field(
        None, gt=0, le=MAX_GPUS, description="Data-parallel size; derived, give to check."
    )
    micro_batch: int = Field(1, gt=0, le=MAX_BATCH, description="Sequences per micro-batch.")
    virtual_stages: int = Field(
        1, gt=0, le=MAX_LAYERS, description="Model chunks per pipeline rank."
    )
    schedule: str = Field(
        "1f1b",
        description="Pipeline schedule (schedules/: 1f1b, interleaved, gpipe, zb-h1, "
        "dualpipe); default 'interleaved' when virtual_stages > 1, as Megatron-LM does.",
    )
    zero: Literal[0, 1, 2, 3] = Field(
        1, description="ZeRO stage: 1 shards optimizer states, 2 +gradients, 3 +weights."
    )
    fsdp: FsdpSpec | None = Field(
        None,
        description="FSDP2's words (reshard_after_forward, shard_group for HSDP, prefetch); "
        "FSDP2 is full sharding, so it means zero 3.",
    )
    recompute: Literal["none", "selective", "full"] = Field(
        "none", description="Activation recomputation (Korthikanti et al. 2022)."
    )
    recompute_modules: tuple[RecomputeModule, ...] = Field(
        ("core_attn",),
        description="With recompute: selective, the modules rebuilt in backward "
        "(Megatron-Core's --recompute-modules): core_attn, layernorm, mla_up_proj, moe_act, "
        "mlp, moe, shared_experts; ignored by the other recompute modes, as in Megatron. "
        "DeepSeek-V3 rebuilds layernorm, mla_up_proj and moe_act.",
    )
    sequence_parallel: bool = Field(
        True, description="Shard norms/dropout activations across tp (Korthikanti et al.)."
    )
    flash_attention: bool = Field(
        True, description="Fused attention: the s×s score matrix is never stored."
    )
    tp_comm_overlap: bool = Field(
        False, description="Overlap tensor-parallel collectives with GEMMs (userbuffers)."
    )
    dp_comm_overlap: bool = Field(
        True, description="Overlap gradient reduction with the backward pass."
    )
    pipeline_layout: tuple[Annotated[int, Field(ge=0)], ...] | str | None = Field(
        None,
        description="Transformer layers per model chunk (pp·virtual_stages counts, in pipeline "
        "order), or Megatron's layout string ('Et*3|(tttt|)*30|tttL'); default: an even split, "
        "earlier chunks taking the remainder.",
    )
    first_stage_layers: int | None = Field(
        None, ge=0, description="Layers of the first stage (--decoder-first-pipeline-num-layers)."
    )
    last_stage_layers: int | None = Field(
        None, ge=0, description="Layers of the last stage (--decoder-last-pipeline-num-layers)."
    )
    grad_reduce_dtype: Literal["bf16", "fp32"] = Field(
        "fp32",
        description="Dtype of the main gradients, accumulated and reduced across data "
        "parallelism in one buffer: fp32 (Megatron-LM's default for bf16 and fp8 training, "
        "4 B/param) or bf16 (--grad-reduce-in-bf16; Megatron-Bridge's performance recipes; "
        "also fp16 training's 16-bit gradients): half the memory and the bytes.",
    )
    expert_imbalance: float = Field(
        1.0,
        ge=1.0,
        le=64.0,
        description="Routed tokens of the busiest expert-parallel GPU over the mean: it sets "
        "the pace of expert compute and all-to-all. 1 = balanced (Megatron-Bridge's "
        "force-balanced benchmarks); measure yours from the router's load statistics.",
    )
    redundant_experts: int = Field(
        0,
        ge=0,
        le=4096,
        description="Extra expert replicas spread over the expert-parallel ranks (EPLB): "
        "each GPU holds (experts + redundant) / ep experts, and the replicas let the "
        "busiest GPU shed load (lower expert_imbalance).",
    )
    expert_loads: tuple[Annotated[float, Field(ge=0.0)], ...] | None = Field(
        None,
        max_length=4096,
        description="The router's load statistics: relative tokens per routed expert, one "
        "number per expert. With them the busiest GPU's share follows from where the "
        "experts sit (expert_placement), in place of expert_imbalance.",
    )
    expert_placement: Literal["contiguous", "eplb"] | None = Field(
        None,
        description="Where routed experts and their redundant replicas sit, with "
        "expert_loads: contiguous (Megatron-Core: experts in index order) or eplb "
        "(DeepSeek's balancer: replicas to the most loaded experts, packed heaviest "
        "first); default eplb with redundant_experts, else contiguous.",
    )
    ep_dispatch: Literal["all_to_all", "deepep"] = Field(
        "all_to_all",
        description="Expert dispatch: all_to_all (Megatron's default: k copies of a token) "
        "or deepep (DeepEP/Hybrid-EP, Megatron's flex dispatcher: one copy per destination "
        "node, forwarded over the scale-up fabric; fp8 dispatch under fp8 training).",
    )
    expert_gemm: Literal["per_expert", "grouped"] = Field(
        "per_expert",
        description="How the routed experts' GEMMs run: per_expert (a GEMM per local "
        "expert, as Transformer Engine's GroupedLinear behind Megatron's --moe-grouped-gemm "
        "issues them; each sees its own tokens) or grouped (one grouped kernel over all "
        "local experts, DeepGEMM's contiguous layout or CUTLASS grouped GEMM: the tiles see "
        "every local expert's tokens as one problem).",
    )
    ep_comm_overlap: bool = Field(
        False,
        description="Hide the expert all-to-all behind another micro-batch's compute "
        "(Megatron-Core's --overlap-moe-expert-parallel-comm); DualPipe always does.",
    )
    cuda_graphs: tuple[CudaGraphScope, ...] = Field(
        (),
        description="Parts of each layer captured in CUDA graphs (Megatron-Core's "
        "--cuda-graph-scope): attn, mlp, moe_router, moe_preprocess, or full_iteration for "
        "the whole step. Captured ops cost the host no launches; the rest run eagerly, and "
        "a pass whose launches take the host longer than the device's work waits on it.",
    )
    host_launch_us: float | None = Field(
        None,
        ge=0.0,
        le=10_000.0,
        description="Host microseconds per kernel launch of your stack (framework Python "
        "and launch together; 0: the host never holds the device up); default: the global "
        "figure fitted on the published rows' train split (`superscale validate` prints it).",
    )

    @property
    def placement(self) -> Literal["contiguous", "eplb"]:
        """`expert_placement`, or its default: eplb with redundant experts, else contiguous."""
        if self.expert_placement is not None:
            return self.expert_placement
        return "eplb" if self.redundant_experts else "contiguous"

    @model_validator(mode="before")
    @classmethod
    def _default_schedule(cls, data: Any) -> Any:
        """Virtual stages without a schedule mean interleaving (Megatron-LM)."""
        if isinstance(data, dict) and data.get("schedule") is None:
            chunks = data.get("virtual_stages", 1)
            if isinstance(chunks, int) and not isinstance(chunks, bool) and chunks > 1:
                return {**data, "schedule": "interleaved"}
        return data

    @model_validator(mode="before")
    @classmethod
    def _fsdp_means_zero3(cls, data: Any) -> Any:
        """FSDP2 shards weights, gradients and optimizer states: ZeRO-3."""
        if isinstance(data, dict) and data.get("fsdp") is not None:
            if "zero" not in data:
                return {**data, "zero": 3}
            if data["zero"] != 3:
                raise ValueError(
                    f"parallel.fsdp is full sharding (zero 3), but parallel.zero is "
                    f"{data['zero']!r}: drop parallel.zero or set it to 3"
                )
        return data

    @field_validator("schedule")
    @classmethod
    def _registered_schedule(cls, value: str) -> str:
        known = tuple(schedules())
        if value not in known:
            near = difflib.get_close_matches(value, known, n=1)
            hint = f"; did you mean '{near[0]}'?" if near else ""
            raise ValueError(f"unknown schedule '{value}' (known: {', '.join(known)}){hint}")
        return value


def _load_model(value: Any, base_dir: Path | None) -> Any:
    if isinstance(value, str):
        from superscale.models.catalog import models

        return models().get(value)
    if isinstance(value, dict) and "hf_config" in value:
        from superscale.models.hf import from_hf_config

        extra = set(value) - {"hf_config", "name"}
        if extra:
            raise ValueError(
                f"unknown key '{sorted(extra)[0]}' beside hf_config (allowed: hf_config, name)"
            )
        path = Path(str(value["hf_config"]))
        if base_dir is not None and not path.is_absolute():
            path = base_dir / path
        config = read_json(path, limit_bytes=MAX_JSON_BYTES, what="hf_config")
        return from_hf_config(config, name=value.get("name") or path.parent.name or "hf-model")
    return value


def _load_cluster(value: Any) -> Any:
    if isinstance(value, str):
        from superscale.hardware.catalog import clusters

        return clusters().get(value)
    return value


def _measured_clocks(chip: Any) -> Any:
    """`chip` with no sustained-clock derate beyond its power cap's: a fitted profile's
    rates are what the kernels sustained where they were measured."""
    from superscale.hardware.catalog import chips

    catalog = chips()
    if chip.name not in catalog.names():
        return chip
    listed = catalog.get(chip.name).efficiency.sustained_clock_fraction
    capped = chip.efficiency.sustained_clock_fraction / listed  # 1 without a power cap
    efficiency = chip.efficiency.model_copy(update={"sustained_clock_fraction": capped})
    return chip.model_copy(update={"efficiency": efficiency})


def _expert_loads_problem(p: ParallelSpec, m: ModelSpec) -> str | None:
    """Why parallel.expert_loads cannot describe this model's experts, or None."""
    if m.moe is None:
        return "parallel.expert_loads needs a mixture-of-experts model"
    loads = p.expert_loads or ()
    if len(loads) != m.moe.experts:
        return (
            f"parallel.expert_loads: {len(loads)} numbers given, the model has "
            f"{m.moe.experts} routed experts (one number each)"
        )
    if sum(loads) <= 0:
        return "parallel.expert_loads: every load is 0; give relative tokens per expert"
    if p.expert_imbalance != 1.0:
        return (
            "parallel: give expert_loads or expert_imbalance, not both (the loads and the "
            "placement set the imbalance)"
        )
    if p.expert_placement == "contiguous" and p.redundant_experts:
        return (
            "parallel.expert_placement 'contiguous' places no redundant replicas; use eplb "
            "with redundant_experts"
        )
    return None


class Scenario(Spec):
    """Model + cluster + training workload + parallel plan, validated together."""

    model: ModelSpec
    cluster: Cluster
    training: TrainingSpec | None = Field(None, description="A training step (simulate).")
    serving: ServingSpec | None = Field(None, description="A deployment (serve).")
    parallel: ParallelSpec = Field(default_factory=ParallelSpec)
    facility: FacilitySpec = Field(default_factory=FacilitySpec)

    @field_validator("model", mode="before")
    @classmethod
    def _model(cls, value: Any, info: Any) -> Any:
        base = (info.context or {}).get("base_dir") if info.context else None
        return _load_model(value, base)

    _cluster = field_validator("cluster", mode="before")(lambda v: _load_cluster(v))

    @field_validator("cluster", mode="after")
    @classmethod
    def _cluster_profile(cls, cluster: Cluster, info: Any) -> Cluster:
        """Swap in the chip that reads `cluster.profile` (fitted or a calibrate file)."""
        if cluster.profile is None:
            return cluster
        from superscale.hardware.profile import named_profile, with_profile

        base = (info.context or {}).get("base_dir") if info.context else None
        profile = named_profile(cluster.profile, cluster.chip.name, base)
        chip = with_profile(cluster.chip, profile)
        if profile.device.kind == "fitted":
            chip = _measured_clocks(chip)
        system = cluster.system.model_copy(update={"chip": chip})
        return cluster.model_copy(update={"system": system})

    @model_validator(mode="after")
    def _plan_fits_cluster(self) -> Scenario:
        if self.training is None and self.serving is None:
            raise ValueError("a scenario needs a training or a serving section")
        if self.training is None:
            return self  # serving plans are validated by the serving model
        p, m, gpus = self.parallel, self.model, self.cluster.gpus
        mp = p.tp * p.pp * p.cp
        if gpus % mp:
            raise ValueError(
                f"parallel: tp·pp·cp = {p.tp}·{p.pp}·{p.cp} = {mp} does not divide the "
                f"cluster's {gpus} GPUs"
            )
        dp = gpus // mp
        if p.dp is not None and p.dp != dp:
            raise ValueError(f"parallel.dp: given {p.dp}, but gpus/(tp·pp·cp) = {dp}")
        if self.training.global_batch % (dp * p.micro_batch):
            raise ValueError(
                f"training.global_batch ({self.training.global_batch}) must be a multiple of "
                f"dp·micro_batch = {dp}·{p.micro_batch}"
            )
        layout = plan_layout(p, m.layers)

        problem = plan_problem(
            m,
            tp=p.tp,
            pp=p.pp,
            cp=p.cp,
            ep=p.ep,
            dp=dp,
            virtual_stages=p.virtual_stages,
            schedule=p.schedule,
            micro_batches=self.training.global_batch // (dp * p.micro_batch),
            seq_len=self.training.seq_len,
            sequence_parallel=p.sequence_parallel,
            layout=layout,
            redundant_experts=p.redundant_experts,
        )
        if problem is not None:
            raise ValueError(problem)
        if p.expert_loads is not None:
            problem = _expert_loads_problem(p, m)
            if problem is not None:
                raise ValueError(problem)
        if p.fsdp is not None and p.fsdp.shard_group is not None:
            problem = hsdp_problem(p.fsdp.shard_group, tp=p.tp, cp=p.cp, ep=p.ep, dp=dp)
            if problem is not None:
                raise ValueError(problem)
        if self.training.fp8_recipe == "mxfp8" and not self.cluster.chip.mx_formats:
            raise ValueError(
                f"training.fp8_recipe 'mxfp8' needs a chip with MX formats (Blackwell); "
                f"{self.cluster.chip.name} has none (use delayed, current or blockwise)"
            )
        if self.training.fp8_recipe == "nvfp4" and "fp4" not in self.cluster.chip.peak_tflops:
            raise ValueError(
                f"training.fp8_recipe 'nvfp4' needs a chip with fp4 tensor cores (Blackwell); "
                f"{self.cluster.chip.name} has none (use delayed, current or blockwise)"
            )
        bf16 = self.training.bf16_layers
        if bf16 is not None and bf16.start + bf16.end > m.layers:
            raise ValueError(
                f"training.bf16_layers: start + end = {bf16.start} + {bf16.end} exceeds the "
                f"model's {m.layers} layers"
            )
        if self.training.images_per_sample and m.vision is None:
            raise ValueError("training.images_per_sample > 0 needs a model with a vision encoder")
        return self

    def require_training(self) -> TrainingSpec:
        """The training section, or a SpecError saying the scenario has none."""
        if self.training is None:
            raise SpecError(
                "this scenario has no training section (training: {seq_len, "
                "global_batch, ...}); it describes serving, see 'superscale serve'"
            )
        return self.training

    @property
    def dp(self) -> int:
        p = self.parallel
        return self.cluster.gpus // (p.tp * p.pp * p.cp)


def _check_yaml_limits(text: str, origin: str) -> None:
    """Refuse YAML text past the readers' bounds (depth, values, aliases, duplicate keys)."""
    load_yaml_text(text, origin=origin)


def read_yaml_file(path: str | Path, *, max_bytes: int = MAX_SCENARIO_BYTES) -> Any:
    """Read a small YAML file through the bounded reader (`superscale.readers`).

    Raises:
        SpecError: not a regular file, over `max_bytes`, malformed or past the bounds, or
            empty.
    """
    data = read_yaml(path, limit_bytes=max_bytes, what="scenario")
    if data is None:
        raise SpecError(f"{path} is empty; a scenario needs model, cluster and training")
    return data


def load_scenario(source: str | Path | dict[str, Any]) -> Scenario:
    """Load and validate a scenario from a YAML path or an already-parsed mapping.

    Raises:
        SpecError: naming the field path, the bad value and what is allowed.
    """
    base_dir: Path | None = None
    if isinstance(source, dict):
        data: Any = source
    else:
        data = read_yaml_file(source)
        base_dir = Path(source).resolve().parent
    if not isinstance(data, dict):
        raise SpecError(
            f"a scenario must be a mapping with keys model, cluster, training, parallel; "
            f"got {type(data).__name__}"
        )
    try:
        return Scenario.model_validate(data, context={"base_dir": base_dir})
    except ValidationError as exc:
        raise spec_error_from(exc) from None
