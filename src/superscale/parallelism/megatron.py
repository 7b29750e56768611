"""Read a Megatron-LM command line into a scenario, so users start from the plan they run.

API (the `simulate` and `search` verbs call these; `args` is the text after
`--from-megatron`, or its already-split tokens)::

    parse_megatron(args, *, cluster=None, base=None) -> MegatronRun
        MegatronRun.scenario: dict   # a mapping for superscale.load_scenario
        MegatronRun.ignored: tuple[str, ...]   # unknown flags and stray words, as given
        MegatronRun.warnings: tuple[str, ...]  # assumptions the mapping had to make
    scenario_from_megatron(args, *, cluster=None, base=None) -> dict   # .scenario only

`cluster` is a catalog cluster name ("h100-16k"), a catalog system name or
``{"system": NAME}`` (count = launcher GPUs / GPUs per system), or a full inline cluster
mapping. `base` is a scenario mapping (a parsed SCENARIO file): its `model` (when given, the
architecture flags must agree with it and override nothing), `cluster` and `training` fill
what the command line leaves out; `parallel` always comes from the command line.

Mapping (flag → scenario field; Megatron-LM's defaults, `megatron/training/arguments.py`,
apply to absent flags):

    --tensor-model-parallel-size / --pipeline-model-parallel-size   parallel.tp / .pp
    --context-parallel-size / --expert-model-parallel-size          parallel.cp / .ep
    --virtual-pipeline-model-parallel-size V, or
    --num-layers-per-virtual-pipeline-stage N (V = layers/(pp·N))   parallel.virtual_stages,
                                                                    schedule interleaved if > 1
    --micro-batch-size                                              parallel.micro_batch
    --sequence-parallel (absent: false)                             parallel.sequence_parallel
    --use-distributed-optimizer → 1, --use-torch-fsdp2 → 3,
    --use-custom-fsdp / --use-megatron-fsdp + --data-parallel-sharding-strategy, else 0
                                                                    parallel.zero
    zero 3 from FSDP (torch FSDP2 or Megatron-FSDP optim_grads_params) → parallel.fsdp: {},
    with --num-distributed-optimizer-instances N > 1 (HSDP: N replicas)
    shard_group = dp·cp / N                                         parallel.fsdp.shard_group
    --recompute-granularity full|selective, --recompute-activations parallel.recompute
    --use-flash-attn, --attention-backend (flash/fused/auto: on;
    unfused/local: off; absent: on unless --transformer-impl local) parallel.flash_attention
    --tp-comm-overlap / --overlap-grad-reduce (absent: false)       parallel.tp_comm_overlap /
                                                                    .dp_comm_overlap
    --pipeline-model-parallel-layout STR                            parallel.pipeline_layout
    --decoder-first/last-pipeline-num-layers N                      parallel.first/last_stage_layers
    --recompute-modules NAME... (selective granularity)             parallel.recompute_modules
    --grad-reduce-in-bf16 (bf16); --bf16 without it, or --accumulate-allreduce-grads-in-fp32:
    fp32 (Megatron's rule); --fp16 without either: 16-bit        parallel.grad_reduce_dtype
    --moe-token-dispatcher-type flex, --moe-enable-deepep → deepep  parallel.ep_dispatch
    --overlap-moe-expert-parallel-comm                              parallel.ep_comm_overlap
    --cuda-graph-impl local|transformer_engine (or --enable-cuda-graph) with
    --cuda-graph-scope full|attn|mlp|moe_router|moe_preprocess|full_iteration (default full:
    attn and mlp)                                                   parallel.cuda_graphs
    --moe-router-num-groups G --moe-router-group-topk K (K < G)     model.moe.max_nodes_per_token
    --use-precision-aware-optimizer + --exp-avg-dtype/--exp-avg-sq-dtype bf16
                                                                    training.adam_moments
    --num-layers, --hidden-size, --num-attention-heads              model.layers/hidden/heads
    --group-query-attention + --num-query-groups (default 1)        model.kv_heads
    --kv-channels                                                   model.head_dim
    --ffn-hidden-size (default 4h; with --swiglu ⌊8h/3/64⌋·64)      model.ffn_hidden
    --swiglu                                                        model.gated_mlp
    --untie-embeddings-and-output-weights (absent: tied)            model.tied_embeddings
    --disable-bias-linear (absent: biases)                          model.bias
    --normalization LayerNorm|RMSNorm (default LayerNorm)           model.norm
    --qk-layernorm                                                  model.qk_norm
    --position-embedding-type learned_absolute (default) → --max-position-embeddings
    (default --seq-length); rope / none → 0                         model.position_embeddings
    --padded-vocab-size (used as is), else --vocab-size or the GPT-2 BPE tokenizer (50257),
    padded like Megatron to a multiple of --make-vocab-size-divisible-by (128) · tp   model.vocab
    --num-experts, --moe-router-topk (2), --moe-ffn-hidden-size (ffn), --moe-shared-expert-
    intermediate-size (one shared expert of that width), --moe-layer-freq (int, or a list
    such as "([0]*3+[1]*58)", parsed without eval)                  model.moe
    --multi-latent-attention, --q-lora-rank, --kv-lora-rank (32), --qk-head-dim (128),
    --qk-pos-emb-head-dim (64), --v-head-dim (128)                  model.mla
    --mtp-num-layers                                                model.mtp_layers
    --seq-length, --global-batch-size (default micro_batch·dp)      training.seq_len/global_batch
    --bf16 / --fp16 / --fp8-format (absent: fp32, not modelled → bf16 with a warning)
                                                                    training.precision
    --fp8-recipe delayed|tensorwise|blockwise|mxfp8 (tensorwise → current), or
    --fp4-format e2m1 [--fp4-recipe nvfp4] (precision fp8, recipe nvfp4)
                                                                    training.fp8_recipe
    --first-last-layers-bf16 [--num-layers-at-start-in-bf16 N] [--num-layers-at-end-in-bf16 N]
    (1 each by default; only under fp8/fp4)                         training.bf16_layers
    --attention-dropout / --hidden-dropout (default 0.1 each)       training.dropout (any > 0)
    torchrun/launch --nproc_per_node × --nnodes (deepspeed --num_gpus × --num_nodes)
                                                                    the GPU count

Optimizer, learning-rate, data, logging and checkpoint flags are understood as having no
effect on step time and dropped silently; every other flag is returned in `ignored`. Nothing
in the command line is evaluated or executed.
"""

from __future__ import annotations

import math
import re
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from superscale.errors import SpecError
from superscale.hardware.spec import Cluster
from superscale.models.spec import ModelSpec

MODEL_NAME = "megatron-model"
DEFAULT_SYSTEM = "dgx-h100"
GPT2_BPE_VOCAB = 50257  # Radford et al. 2019; Megatron's GPT2BPETokenizer

_INT, _FLOAT, _STR, _BOOL, _LIST = "int", "float", "str", "bool", "list"
_INT_FLAGS = """
    tensor-model-parallel-size pipeline-model-parallel-size context-parallel-size
    num-layers-per-virtual-pipeline-stage virtual-pipeline-model-parallel-size
    expert-model-parallel-size expert-tensor-parallel-size num-layers hidden-size
    num-attention-heads num-query-groups ffn-hidden-size kv-channels max-position-embeddings
    padded-vocab-size vocab-size make-vocab-size-divisible-by seq-length global-batch-size
    micro-batch-size num-experts moe-router-topk moe-ffn-hidden-size
    moe-shared-expert-intermediate-size q-lora-rank kv-lora-rank qk-head-dim
    qk-pos-emb-head-dim v-head-dim mtp-num-layers recompute-num-layers
    moe-router-num-groups moe-router-group-topk decoder-first-pipeline-num-layers
    decoder-last-pipeline-num-layers num-distributed-optimizer-instances
    num-layers-at-start-in-bf16 num-layers-at-end-in-bf16
"""
_STR_FLAGS = """
    normalization position-embedding-type fp8-format recompute-granularity recompute-method
    attention-backend transformer-impl tokenizer-type moe-layer-freq
    data-parallel-sharding-strategy vocab-file merge-file moe-token-dispatcher-type
    exp-avg-dtype exp-avg-sq-dtype pipeline-model-parallel-layout fp8-recipe fp4-format
    fp4-recipe cuda-graph-impl
"""
_BOOL_FLAGS = """
    group-query-attention swiglu untie-embeddings-and-output-weights disable-bias-linear
    add-qkv-bias bf16 fp16 recompute-activations use-flash-attn tp-comm-overlap
    overlap-grad-reduce overlap-param-gather use-distributed-optimizer use-torch-fsdp2
    use-custom-fsdp use-megatron-fsdp sequence-parallel multi-latent-attention
    use-rotary-position-embeddings
    no-position-embedding qk-layernorm overlap-moe-expert-parallel-comm moe-enable-deepep
    use-precision-aware-optimizer accumulate-allreduce-grads-in-fp32 grad-reduce-in-bf16
    first-last-layers-bf16 enable-cuda-graph external-cuda-graph
"""
_FLAGS: dict[str, str] = {
    **dict.fromkeys(_INT_FLAGS.split(), _INT),
    **dict.fromkeys(("attention-dropout", "hidden-dropout"), _FLOAT),
    **dict.fromkeys(_STR_FLAGS.split(), _STR),
    **dict.fromkeys(_BOOL_FLAGS.split(), _BOOL),
    "recompute-modules": _LIST,
    "cuda-graph-scope": _LIST,
}
_ALIASES = {"encoder-num-layers": "num-layers", "encoder-seq-length": "seq-length"}
# Flags that change nothing about the step time (optimizer values, data, I/O), dropped
# quietly: the name itself, or the name followed by "-..." (a trailing "-" means prefix only).
_NO_EFFECT = """
    lr min-lr adam- sgd- optimizer weight-decay start-weight-decay end-weight-decay clip-grad
    init-method seed train-iters train-samples log- save load data-path data-cache-path
    train-data-path valid-data-path test-data-path split eval- tensorboard- wandb-
    tokenizer-model distributed-timeout-minutes exit- ckpt- rotary-base rotary-percent
    timing-log no-load- no-save- moe-aux-loss-coeff moe-z-loss-coeff use-mcore-models
"""
_NO_EFFECT_PREFIXES = tuple(_NO_EFFECT.split())
_LAUNCHER_GPUS = {"nproc-per-node": "per_node", "num-gpus": "per_node"}
_LAUNCHER_NODES = {"nnodes", "num-nodes"}
# --fp8-recipe (Megatron-Core): tensorwise is per-tensor current scaling
_FP8_RECIPES = {
    "delayed": "delayed",
    "tensorwise": "current",
    "blockwise": "blockwise",
    "mxfp8": "mxfp8",
}
_MAY_BE_ZERO = {"mtp-num-layers", "num-layers-at-start-in-bf16", "num-layers-at-end-in-bf16"}
_ZERO_BY_SHARDING = {"no_shard": 0, "optim": 1, "optim_grads": 2, "optim_grads_params": 3}


@dataclass(frozen=True, slots=True, kw_only=True)
class MegatronRun:
    """A Megatron command line read into a scenario mapping, with what was not used."""

    scenario: dict[str, Any]
    ignored: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()


def scenario_from_megatron(
    args: str | Sequence[str],
    *,
    cluster: str | dict[str, Any] | None = None,
    base: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The scenario mapping of a Megatron-LM command line (see `parse_megatron`)."""
    return parse_megatron(args, cluster=cluster, base=base).scenario


def parse_megatron(
    args: str | Sequence[str],
    *,
    cluster: str | dict[str, Any] | None = None,
    base: Mapping[str, Any] | None = None,
) -> MegatronRun:
    """Read a Megatron-LM command line (optionally behind a torchrun launcher).

    Args:
        args: The command line as one string (shell quoting, `\\`-newlines and `#` comments
            allowed) or as tokens.
        cluster: Catalog cluster name, catalog system name, ``{"system": NAME}`` (count from
            the launcher's GPUs) or an inline cluster mapping; default: `base`'s cluster,
            else `DEFAULT_SYSTEM` × launcher GPUs.
        base: A scenario mapping whose model, cluster and training fill what the command
            line does not say.

    Returns:
        The scenario mapping (for `superscale.load_scenario`), the flags not understood and
        the assumptions made.

    Raises:
        SpecError: A flag has a bad value, or something required (GPU count, model shape,
            sequence length, vocabulary) is neither in the command line nor given.
    """
    tokens = _tokens(args)
    launcher, megatron = _split_launcher(tokens)
    values, ignored = _read_flags(megatron)
    warnings: list[str] = []
    base = dict(base or {})
    launcher_gpus = _launcher_gpus(launcher + megatron, warnings)

    base_model = base.get("model")
    tp = _get_int(values, "tensor-model-parallel-size", 1)
    if base_model is not None:
        model: Any = base_model
        spec = _base_model_spec(base_model, warnings)
        if spec is not None:
            _check_consistent(values, spec, base_model)
        layers = spec.layers if spec is not None else values.get("num-layers")
    else:
        model = _model(values, tp=tp, warnings=warnings)
        layers = model["layers"]

    cluster_value, gpus = _cluster(
        cluster if cluster is not None else base.get("cluster"), launcher_gpus, warnings
    )
    parallel = _parallel(values, tp=tp, layers=layers)
    parallel.update(_fsdp(values, parallel, gpus=gpus, w=warnings))
    training = _training(values, base.get("training"), parallel=parallel, gpus=gpus, w=warnings)
    if parallel["recompute"] == "full" and values.get("recompute-method") == "block":
        warnings.append(
            "--recompute-method block recomputes only --recompute-num-layers layers per "
            "stage; modelled as recomputing every layer"
        )
    if base.get("parallel"):
        warnings.append("the scenario's parallel section is replaced by the Megatron plan")
    scenario = {
        k: v for k, v in base.items() if k not in {"model", "cluster", "training", "parallel"}
    }
    scenario.update(model=model, cluster=cluster_value, training=training, parallel=parallel)
    scenario.pop("serving", None)
    return MegatronRun(scenario=scenario, ignored=tuple(ignored), warnings=tuple(warnings))


# ---- tokens and flags --------------------------------------------------------------------


def _tokens(args: str | Sequence[str]) -> list[str]:
    if not isinstance(args, str):
        return [str(a) for a in args]
    text = args.replace("\\\r\n", " ").replace("\\\n", " ")
    try:
        return shlex.split(text, comments=True)
    except ValueError as exc:
        raise SpecError(f"cannot split the Megatron arguments: {exc}") from None


def _split_launcher(tokens: list[str]) -> tuple[list[str], list[str]]:
    """Launcher words come before the training script (the first `*.py` word)."""
    for i, token in enumerate(tokens):
        if token.endswith(".py") and not token.startswith("-"):
            return tokens[:i], tokens[i + 1 :]
    return [], tokens


def _flag_name(token: str) -> tuple[str, str | None]:
    name, eq, value = token[2:].partition("=")
    name = name.replace("_", "-")
    return _ALIASES.get(name, name), (value if eq else None)


def _read_flags(tokens: list[str]) -> tuple[dict[str, Any], list[str]]:
    values: dict[str, Any] = {}
    ignored: list[str] = []
    i = 0
    while i < len(tokens):
        token = tokens[i]
        i += 1
        if not token.startswith("--"):
            ignored.append(token)
            continue
        name, inline = _flag_name(token)
        kind = _FLAGS.get(name)
        if kind is None:
            # Unknown arity: its values run to the next flag (e.g. --rampup-batch-size 16 16 N).
            start = i
            while inline is None and i < len(tokens) and not tokens[i].startswith("--"):
                i += 1
            known = name in _LAUNCHER_GPUS or name in _LAUNCHER_NODES or _no_effect(name)
            if not known:
                ignored.append(" ".join([token, *tokens[start:i]]))
            continue
        if kind == _BOOL:
            if inline is not None:
                raise SpecError(f"takes no value, got '{inline}'", path=f"--{name}")
            values[name] = True
            continue
        if kind == _LIST:  # its values run to the next flag (argparse nargs="*")
            start = i
            while inline is None and i < len(tokens) and not tokens[i].startswith("--"):
                i += 1
            values[name] = [inline] if inline is not None else tokens[start:i]
            continue
        if inline is None:
            if i >= len(tokens) or tokens[i].startswith("--"):
                raise SpecError(f"needs a value ({_KIND_WORDS[kind]})", path=f"--{name}")
            inline = tokens[i]
            i += 1
        values[name] = _convert(name, kind, inline)
    return values, ignored


_KIND_WORDS = {_INT: "an integer", _FLOAT: "a number", _STR: "a word"}


def _no_effect(name: str) -> bool:
    return any(
        name == p.rstrip("-") or name.startswith(p if p.endswith("-") else p + "-")
        for p in _NO_EFFECT_PREFIXES
    )


def _convert(name: str, kind: str, text: str) -> Any:
    flag = f"--{name}"
    if kind == _INT:
        try:
            number = int(text)
        except ValueError:
            raise SpecError(f"expects an integer, got '{text}'", path=flag) from None
        minimum = 0 if name in _MAY_BE_ZERO else 1
        if number < minimum:
            raise SpecError(f"must be >= {minimum}, got {number}", path=flag)
        return number
    if kind == _FLOAT:
        try:
            value = float(text)
        except ValueError:
            raise SpecError(f"expects a number, got '{text}'", path=flag) from None
        if not math.isfinite(value) or value < 0:
            raise SpecError(f"must be a finite number >= 0, got '{text}'", path=flag)
        return value
    return text


def _get_int(values: Mapping[str, Any], name: str, default: int) -> int:
    value = values.get(name, default)
    assert isinstance(value, int)
    return value


def _choice(values: Mapping[str, Any], name: str, choices: dict[str, Any], default: Any) -> Any:
    text = values.get(name)
    if text is None:
        return default
    key = str(text).lower()
    if key not in choices:
        raise SpecError(f"unknown value '{text}' (allowed: {', '.join(choices)})", path=f"--{name}")
    return choices[key]


# ---- launcher and cluster ----------------------------------------------------------------


def _launcher_gpus(tokens: list[str], warnings: list[str]) -> int | None:
    """GPUs the launcher starts: nproc_per_node × nnodes (torchrun, launch, deepspeed)."""
    per_node: int | None = None
    nodes = 1
    seen = False
    for i, token in enumerate(tokens):
        if not token.startswith("--"):
            continue
        name, inline = _flag_name(token)
        if name not in _LAUNCHER_GPUS and name not in _LAUNCHER_NODES:
            continue
        text = inline if inline is not None else (tokens[i + 1] if i + 1 < len(tokens) else "")
        if name in _LAUNCHER_NODES:
            low, _, high = text.partition(":")  # elastic "min:max": the largest size
            count = _launcher_int(token, high or low)
            if high:
                warnings.append(f"{token} {text}: elastic node range, using {count} nodes")
            nodes, seen = count, True
        elif text.isdigit():
            per_node, seen = _launcher_int(token, text), True
        else:
            warnings.append(f"{token} {text}: GPUs per node not a number, give --cluster")
    if per_node is None:
        if seen:
            warnings.append("the launcher gives nodes but not GPUs per node (--nproc_per_node)")
        return None
    return per_node * nodes


def _launcher_int(flag: str, text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise SpecError(f"expects a positive integer, got '{text}'", path=flag)
    return int(text)


def _cluster(
    chosen: str | dict[str, Any] | None, launcher_gpus: int | None, warnings: list[str]
) -> tuple[Any, int | None]:
    from superscale.hardware.catalog import clusters, systems

    if chosen is None:
        if launcher_gpus is None:
            raise SpecError(
                "no GPU count: the command line has no launcher (torchrun --nproc_per_node N "
                "--nnodes M) and no cluster was given; give --cluster NAME or --system NAME "
                "--count N (or a SCENARIO with a cluster)"
            )
        warnings.append(
            f"no cluster given: assuming {DEFAULT_SYSTEM} systems for the launcher's "
            f"{launcher_gpus} GPUs (choose with --cluster or --system)"
        )
        chosen = {"system": DEFAULT_SYSTEM}
    if isinstance(chosen, str):
        if chosen not in clusters() and chosen in systems():
            chosen = {"system": chosen}
        else:
            gpus = clusters().get(chosen).gpus
            _check_launcher(launcher_gpus, gpus, warnings)
            return chosen, gpus
    if not isinstance(chosen, dict):
        raise SpecError(f"must be a cluster name or mapping, got {chosen!r}", path="cluster")
    if "count" not in chosen and "system" in chosen:
        system = chosen["system"]
        per_system = systems().get(system).gpus if isinstance(system, str) else None
        if per_system is None and isinstance(system, dict):
            per_system = system.get("gpus") if isinstance(system.get("gpus"), int) else None
        name = system if isinstance(system, str) else "the system"
        if launcher_gpus is None or per_system is None:
            raise SpecError(
                f"cannot tell how many {name} systems: give --count N (the command line has "
                "no torchrun --nproc_per_node/--nnodes)"
            )
        if launcher_gpus % per_system:
            raise SpecError(
                f"the launcher's {launcher_gpus} GPUs are not a whole number of {name} "
                f"systems ({per_system} GPUs each); give --count N"
            )
        return {**chosen, "count": launcher_gpus // per_system}, launcher_gpus
    try:
        inline_gpus: int | None = Cluster.model_validate(chosen).gpus
    except (ValidationError, SpecError):
        inline_gpus = None  # load_scenario reports the problem with its field path
    _check_launcher(launcher_gpus, inline_gpus, warnings)
    return chosen, inline_gpus


def _check_launcher(launcher_gpus: int | None, gpus: int | None, warnings: list[str]) -> None:
    if launcher_gpus is not None and gpus is not None and launcher_gpus != gpus:
        warnings.append(
            f"the launcher starts {launcher_gpus} GPUs but the cluster has {gpus}; "
            f"predicting on the cluster's {gpus}"
        )


# ---- model -------------------------------------------------------------------------------


def _required(values: Mapping[str, Any], name: str) -> int:
    if name not in values:
        raise SpecError(
            f"no --{name} in the Megatron arguments: add it, or give a SCENARIO whose model "
            "names the architecture (e.g. model: llama3-8b)"
        )
    return _get_int(values, name, 0)


def _model(values: Mapping[str, Any], *, tp: int, warnings: list[str]) -> dict[str, Any]:
    layers = _required(values, "num-layers")
    hidden = _required(values, "hidden-size")
    heads = _required(values, "num-attention-heads")
    gated = bool(values.get("swiglu"))
    default_ffn = int(4 * hidden * 2 / 3 / 64) * 64 if gated else 4 * hidden  # Megatron default
    ffn = _get_int(values, "ffn-hidden-size", default_ffn)
    model: dict[str, Any] = {
        "name": MODEL_NAME,
        "layers": layers,
        "hidden": hidden,
        "heads": heads,
        "ffn_hidden": ffn,
        "vocab": _vocab(values, tp=tp, warnings=warnings),
        "gated_mlp": gated,
        "tied_embeddings": not values.get("untie-embeddings-and-output-weights"),
        "bias": not values.get("disable-bias-linear"),
        "norm": _choice(
            values, "normalization", {"layernorm": "layernorm", "rmsnorm": "rmsnorm"}, "layernorm"
        ),
        "qk_norm": bool(values.get("qk-layernorm")),
        "position_embeddings": _position_embeddings(values),
        "source": "Megatron-LM command line",
    }
    if values.get("multi-latent-attention"):
        model["mla"] = {
            "q_lora_rank": values.get("q-lora-rank"),
            "kv_lora_rank": _get_int(values, "kv-lora-rank", 32),
            "qk_nope_head_dim": _get_int(values, "qk-head-dim", 128),
            "qk_rope_head_dim": _get_int(values, "qk-pos-emb-head-dim", 64),
            "v_head_dim": _get_int(values, "v-head-dim", 128),
        }
    else:
        if values.get("group-query-attention"):
            model["kv_heads"] = _get_int(values, "num-query-groups", 1)
        elif "num-query-groups" in values:
            warnings.append(
                "--num-query-groups without --group-query-attention: Megatron ignores it"
            )
        if "kv-channels" in values:
            model["head_dim"] = values["kv-channels"]
    if "num-experts" in values:
        model["moe"] = _moe(values, layers=layers, ffn=ffn, warnings=warnings)
    if values.get("mtp-num-layers"):
        model["mtp_layers"] = values["mtp-num-layers"]
    return model


def _position_embeddings(values: Mapping[str, Any]) -> int:
    if values.get("use-rotary-position-embeddings") or values.get("no-position-embedding"):
        return 0
    kind = _choice(
        values,
        "position-embedding-type",
        {k: k for k in ("learned_absolute", "rope", "mrope", "yarn", "relative", "none")},
        "learned_absolute",
    )
    if kind != "learned_absolute":
        return 0
    return _get_int(values, "max-position-embeddings", _get_int(values, "seq-length", 0)) or 0


def _vocab(values: Mapping[str, Any], *, tp: int, warnings: list[str]) -> int:
    """Megatron pads the tokenizer's vocabulary to a multiple of make_vocab_size_divisible_by·tp."""
    if "padded-vocab-size" in values:
        return _get_int(values, "padded-vocab-size", 0)
    tokenizer = values.get("tokenizer-type")
    if "vocab-size" in values:
        raw = _get_int(values, "vocab-size", 0)
    elif tokenizer == "GPT2BPETokenizer" or (
        tokenizer is None and "vocab-file" in values and "merge-file" in values
    ):
        raw = GPT2_BPE_VOCAB
    else:
        said = f" (--tokenizer-type {tokenizer} is read from files not available here)"
        raise SpecError(
            "cannot tell the vocabulary size"
            + (said if tokenizer else "")
            + ": add --vocab-size N (padded as Megatron does) or --padded-vocab-size N, or "
            "give a SCENARIO whose model has the vocabulary"
        )
    multiple = _get_int(values, "make-vocab-size-divisible-by", 128) * tp
    padded = -(-raw // multiple) * multiple
    if padded != raw:
        warnings.append(
            f"vocabulary {raw} padded to {padded} (a multiple of "
            f"{multiple // tp}·tp = {multiple}, as Megatron does)"
        )
    return padded


def _moe(
    values: Mapping[str, Any], *, layers: int, ffn: int, warnings: list[str]
) -> dict[str, Any]:
    moe: dict[str, Any] = {
        "experts": values["num-experts"],
        "top_k": _get_int(values, "moe-router-topk", 2),
        "expert_ffn_hidden": _get_int(values, "moe-ffn-hidden-size", ffn),
    }
    shared = values.get("moe-shared-expert-intermediate-size")
    if shared:
        moe["shared_experts"] = 1  # Megatron: one shared MLP of the total shared width
        moe["shared_expert_ffn_hidden"] = shared
    groups, chosen = values.get("moe-router-num-groups"), values.get("moe-router-group-topk")
    if groups and chosen and chosen < groups:  # group-limited routing, one group per node
        moe["max_nodes_per_token"] = chosen
    dense, frequency = _layer_pattern(values.get("moe-layer-freq"), layers, warnings)
    if dense:
        moe["dense_layers"] = dense
    if frequency > 1:
        moe["layer_frequency"] = frequency
    return moe


_TERM = re.compile(r"\[\s*([01](?:\s*,\s*[01])*)\s*,?\s*\](?:\s*\*\s*(\d+))?")


def _layer_pattern(text: str | None, layers: int, warnings: list[str]) -> tuple[int, int]:
    """--moe-layer-freq as (leading dense layers, every n-th layer MoE); never evaluated."""
    flag = "--moe-layer-freq"
    if text is None:
        return 0, 1
    if text.strip().isdigit():
        frequency = int(text)
        if frequency < 1:
            raise SpecError(f"must be >= 1, got {frequency}", path=flag)
        return 0, frequency  # Megatron: layer i is MoE when i % n == 0
    body = text.strip()
    if body.startswith("(") and body.endswith(")"):
        body = body[1:-1]
    pattern: list[int] = []
    for term in body.split("+"):
        match = _TERM.fullmatch(term.strip())
        if match is None:
            raise SpecError(
                f"expects an integer or a 0/1 list such as '([0]*3+[1]*58)', got '{text}'",
                path=flag,
            )
        items = [int(x) for x in match.group(1).replace(" ", "").split(",")]
        repeat = int(match.group(2) or 1)
        if len(items) * repeat > 100_000:
            raise SpecError(f"pattern is too long, got '{text}'", path=flag)
        pattern += items * repeat
    if len(pattern) != layers:
        raise SpecError(f"has {len(pattern)} entries but the model has {layers} layers", path=flag)
    dense = next((i for i, x in enumerate(pattern) if x), layers)
    rest = pattern[dense:]
    for frequency in range(1, len(rest) + 1):
        if rest == [int(i % frequency == 0) for i in range(len(rest))]:
            return dense, frequency
    moe_layers = sum(pattern)
    warnings.append(
        f"{flag} pattern is not 'k dense layers, then every n-th': modelled as "
        f"{layers - moe_layers} leading dense and {moe_layers} MoE layers (same counts)"
    )
    return layers - moe_layers, 1


def _base_model_spec(value: Any, warnings: list[str]) -> ModelSpec | None:
    from superscale.models.catalog import models

    if isinstance(value, str):
        return models().get(value)
    if isinstance(value, dict) and "hf_config" not in value:
        try:
            return ModelSpec.model_validate(value)
        except ValidationError:
            return None  # load_scenario reports it with the field path
    warnings.append("the base model is an hf_config: the Megatron shape flags were not checked")
    return None


def _check_consistent(values: Mapping[str, Any], spec: ModelSpec, given: Any) -> None:
    """The base model decides the architecture; Megatron shape flags must agree with it."""
    moe = spec.moe
    pairs: list[tuple[str, int | None]] = [
        ("num-layers", spec.layers),
        ("hidden-size", spec.hidden),
        ("num-attention-heads", spec.heads),
        ("ffn-hidden-size", spec.ffn_hidden),
        ("num-experts", moe.experts if moe else None),
        ("moe-router-topk", moe.top_k if moe else None),
        ("moe-ffn-hidden-size", moe.expert_ffn_hidden if moe else None),
    ]
    if spec.mla is None:
        pairs.append(("kv-channels", spec.d_head))
        if values.get("group-query-attention"):
            pairs.append(("num-query-groups", spec.n_kv_heads))
    wrong = [
        f"--{n} {values[n]} vs {spec_value}"
        for n, spec_value in pairs
        if n in values and values[n] != spec_value
    ]
    if wrong:
        name = given if isinstance(given, str) else spec.name
        raise SpecError(
            f"the Megatron arguments disagree with the base model '{name}': "
            + "; ".join(wrong)
            + " (the SCENARIO's model decides the architecture; fix or drop those flags)"
        )


# ---- plan and workload -------------------------------------------------------------------


def _parallel(values: Mapping[str, Any], *, tp: int, layers: int | None) -> dict[str, Any]:
    pp = _get_int(values, "pipeline-model-parallel-size", 1)
    virtual = _virtual_stages(values, pp=pp, layers=layers)
    if "pipeline-model-parallel-layout" in values and virtual == 1:
        from superscale.scenario.layout import parse_layout

        chunks = len(parse_layout(str(values["pipeline-model-parallel-layout"])))
        if chunks % pp == 0:
            virtual = chunks // pp  # Megatron derives the virtual stages from the layout
    return {
        "tp": tp,
        "pp": pp,
        "cp": _get_int(values, "context-parallel-size", 1),
        "ep": _get_int(values, "expert-model-parallel-size", 1),
        "micro_batch": _get_int(values, "micro-batch-size", 1),
        "virtual_stages": virtual,
        "schedule": "interleaved" if virtual > 1 else "1f1b",
        "zero": _zero(values),
        "recompute": _recompute(values),
        "sequence_parallel": bool(values.get("sequence-parallel")),
        "flash_attention": _flash(values),
        "tp_comm_overlap": bool(values.get("tp-comm-overlap")),
        "dp_comm_overlap": bool(values.get("overlap-grad-reduce")),
        "grad_reduce_dtype": _grad_reduce_dtype(values),
        **_layout(values),
        **_moe_plan(values),
        **_cuda_graphs(values),
        **(_recompute_modules(values) if _recompute(values) == "selective" else {}),
    }


def _grad_reduce_dtype(values: Mapping[str, Any]) -> str:
    """Megatron-LM's rule (training/arguments.py): --bf16 accumulates and reduces gradients
    in fp32 unless --grad-reduce-in-bf16; --fp16 keeps 16-bit gradients unless
    --accumulate-allreduce-grads-in-fp32."""
    if values.get("grad-reduce-in-bf16"):
        return "bf16"
    if values.get("bf16") or values.get("accumulate-allreduce-grads-in-fp32"):
        return "fp32"
    return "bf16" if values.get("fp16") else "fp32"


_RECOMPUTE_MODULES = (
    "core_attn",
    "layernorm",
    "mla_up_proj",
    "moe_act",
    "mlp",
    "moe",
    "shared_experts",
)


def _recompute_modules(values: Mapping[str, Any]) -> dict[str, Any]:
    """--recompute-modules (Megatron-Core's default: core_attn) under selective recompute."""
    modules = values.get("recompute-modules")
    if modules is None:
        return {}
    unknown = [m for m in modules if m not in _RECOMPUTE_MODULES]
    if unknown:
        raise SpecError(
            f"unknown module '{unknown[0]}' (allowed: {', '.join(_RECOMPUTE_MODULES)})",
            path="--recompute-modules",
        )
    if not modules:
        raise SpecError("needs at least one module name", path="--recompute-modules")
    return {"recompute_modules": list(modules)}


# --cuda-graph-scope names -> parallel.cuda_graphs: "full" is each layer whole, which for a
# dropless MoE layer leaves the experts eager (their token counts vary step to step)
_GRAPH_SCOPES = {
    "full": ("attn", "mlp"),
    "attn": ("attn",),
    "mlp": ("mlp",),
    "moe_router": ("moe_router",),
    "moe_preprocess": ("moe_preprocess",),
    "full_iteration": ("full_iteration",),
}


def _cuda_graphs(values: Mapping[str, Any]) -> dict[str, Any]:
    """--cuda-graph-impl local|transformer_engine (or the older --enable-cuda-graph and
    --external-cuda-graph) with --cuda-graph-scope (Megatron-Core's default: full)."""
    impl = values.get("cuda-graph-impl")
    if impl is None:
        on = values.get("enable-cuda-graph") or values.get("external-cuda-graph")
        impl = "local" if on else "none"
    if impl not in {"none", "local", "transformer_engine"}:
        raise SpecError(
            f"unknown value '{impl}' (allowed: none, local, transformer_engine)",
            path="--cuda-graph-impl",
        )
    if impl == "none":
        return {}
    scopes = values.get("cuda-graph-scope") or ["full"]
    unknown = [name for name in scopes if name not in _GRAPH_SCOPES]
    if unknown:
        raise SpecError(
            f"unknown scope '{unknown[0]}' (allowed: {', '.join(_GRAPH_SCOPES)})",
            path="--cuda-graph-scope",
        )
    picked = dict.fromkeys(scope for name in scopes for scope in _GRAPH_SCOPES[name])
    return {"cuda_graphs": list(picked)}


def _layout(values: Mapping[str, Any]) -> dict[str, Any]:
    """--pipeline-model-parallel-layout, or uneven first/last stages."""
    out: dict[str, Any] = {}
    if "pipeline-model-parallel-layout" in values:
        out["pipeline_layout"] = str(values["pipeline-model-parallel-layout"])
    if "decoder-first-pipeline-num-layers" in values:
        out["first_stage_layers"] = values["decoder-first-pipeline-num-layers"]
    if "decoder-last-pipeline-num-layers" in values:
        out["last_stage_layers"] = values["decoder-last-pipeline-num-layers"]
    return out


def _moe_plan(values: Mapping[str, Any]) -> dict[str, Any]:
    """Expert dispatch: the flex dispatcher with DeepEP or Hybrid-EP sends a token once per
    node; --overlap-moe-expert-parallel-comm hides the all-to-all behind the other batch."""
    plan: dict[str, Any] = {}
    dispatcher = _choice(
        values,
        "moe-token-dispatcher-type",
        {"alltoall": "all_to_all", "allgather": "all_to_all", "flex": "deepep"},
        "all_to_all",
    )
    if values.get("moe-enable-deepep") or dispatcher == "deepep":
        plan["ep_dispatch"] = "deepep"
    if values.get("overlap-moe-expert-parallel-comm"):
        plan["ep_comm_overlap"] = True
    return plan


def _virtual_stages(values: Mapping[str, Any], *, pp: int, layers: int | None) -> int:
    by_size = values.get("virtual-pipeline-model-parallel-size")
    per_stage = values.get("num-layers-per-virtual-pipeline-stage")
    if per_stage is None:
        return int(by_size or 1)
    flag = "--num-layers-per-virtual-pipeline-stage"
    if layers is None:
        raise SpecError("needs --num-layers (or a base model) to count the stages", path=flag)
    if layers % (pp * per_stage):
        raise SpecError(
            f"{per_stage}·pp ({pp}) does not divide the model's {layers} layers", path=flag
        )
    virtual = layers // (pp * int(per_stage))
    if by_size is not None and by_size != virtual:
        raise SpecError(
            f"gives {virtual} virtual stages but --virtual-pipeline-model-parallel-size "
            f"says {by_size}",
            path=flag,
        )
    return virtual


def _fsdp(
    values: Mapping[str, Any], parallel: Mapping[str, Any], *, gpus: int | None, w: list[str]
) -> dict[str, Any]:
    """FSDP's words: full sharding under torch FSDP2 or Megatron-FSDP's optim_grads_params,
    hybrid (HSDP) with --num-distributed-optimizer-instances N > 1 (N replicas)."""
    flag = "--num-distributed-optimizer-instances"
    instances = values.get("num-distributed-optimizer-instances", 1)
    if instances < 1:
        raise SpecError(f"must be at least 1, got {instances}", path=flag)
    if parallel["zero"] != 3:
        if instances > 1:
            w.append(
                f"{flag} {instances} without full sharding: modelled as one instance "
                "(partial sharding is modelled for FSDP, parallel.fsdp.shard_group)"
            )
        return {}
    fsdp: dict[str, Any] = {}
    if instances > 1:
        if gpus is None:
            raise SpecError("needs the GPU count (--cluster or --system) to size", path=flag)
        dp_cp = gpus // (parallel["tp"] * parallel["pp"])
        if dp_cp % instances:
            raise SpecError(f"{instances} does not divide dp·cp = {dp_cp}", path=flag)
        fsdp["shard_group"] = dp_cp // instances
    return {"fsdp": fsdp}


def _zero(values: Mapping[str, Any]) -> int:
    if values.get("use-torch-fsdp2"):
        return 3
    if values.get("use-custom-fsdp") or values.get("use-megatron-fsdp"):
        return int(_choice(values, "data-parallel-sharding-strategy", _ZERO_BY_SHARDING, 3))
    return 1 if values.get("use-distributed-optimizer") else 0


def _recompute(values: Mapping[str, Any]) -> str:
    if values.get("recompute-activations"):
        return "selective"  # Megatron sets granularity selective for this flag
    granularity = {"full": "full", "selective": "selective"}
    return str(_choice(values, "recompute-granularity", granularity, "none"))


def _flash(values: Mapping[str, Any]) -> bool:
    if values.get("use-flash-attn"):
        return True
    backends = {"flash": True, "fused": True, "auto": True, "unfused": False, "local": False}
    default = values.get("transformer-impl") != "local"
    return bool(_choice(values, "attention-backend", backends, default))


def _training(
    values: Mapping[str, Any],
    base: Any,
    *,
    parallel: Mapping[str, Any],
    gpus: int | None,
    w: list[str],
) -> dict[str, Any]:
    training: dict[str, Any] = dict(base) if isinstance(base, dict) else {}
    if "seq-length" in values:
        training["seq_len"] = values["seq-length"]
    elif "seq_len" not in training:
        raise SpecError(
            "no --seq-length in the Megatron arguments: add it (or give a SCENARIO with "
            "training.seq_len)"
        )
    if "global-batch-size" in values:
        training["global_batch"] = values["global-batch-size"]
    elif "global_batch" not in training and gpus is not None:
        dp = max(1, gpus // (parallel["tp"] * parallel["pp"] * parallel["cp"]))
        mb = parallel["micro_batch"]
        training["global_batch"] = mb * dp  # Megatron's default
        w.append(f"no --global-batch-size: Megatron's default micro_batch·dp = {dp}·{mb}")
    if values.get("bf16") and values.get("fp16"):
        raise SpecError("--bf16 and --fp16 are exclusive; give one")
    if "fp8-format" in values and "fp4-format" in values:
        raise SpecError("--fp8-format and --fp4-format are exclusive; give one")
    if "fp8-format" in values:
        _choice(values, "fp8-format", {"e4m3": 1, "hybrid": 1}, None)
        training["precision"] = "fp8"
        recipe = _choice(values, "fp8-recipe", _FP8_RECIPES, training.get("fp8_recipe"))
        if recipe is not None:
            training["fp8_recipe"] = recipe
    elif "fp4-format" in values:  # NVFP4: the layers' GEMMs in fp4, the rest as fp8 runs
        _choice(values, "fp4-format", {"e2m1": 1}, None)
        _choice(values, "fp4-recipe", {"nvfp4": 1}, None)
        training["precision"] = "fp8"
        training["fp8_recipe"] = "nvfp4"
    elif values.get("bf16") or values.get("fp16"):
        training["precision"] = "bf16" if values.get("bf16") else "fp16"
    elif "precision" not in training:
        training["precision"] = "bf16"
        w.append(
            "no --bf16/--fp16/--fp8-format: Megatron would train in fp32, which is not "
            "modelled; assuming bf16"
        )
    training.update(_bf16_layers(values, training, w))
    dropout = max(values.get("attention-dropout", 0.1), values.get("hidden-dropout", 0.1))
    training["dropout"] = dropout > 0  # Megatron's default is 0.1 for both
    if values.get("use-precision-aware-optimizer"):
        dtypes = {"fp32": "fp32", "bf16": "bf16", "fp16": "bf16"}
        first = _choice(values, "exp-avg-dtype", dtypes, "fp32")
        second = _choice(values, "exp-avg-sq-dtype", dtypes, "fp32")
        if first != second:
            w.append(
                f"--exp-avg-dtype {first} and --exp-avg-sq-dtype {second} differ: both "
                "moments modelled as fp32"
            )
        training["adam_moments"] = first if first == second else "fp32"
    return training


def _bf16_layers(
    values: Mapping[str, Any], training: Mapping[str, Any], w: list[str]
) -> dict[str, Any]:
    """--first-last-layers-bf16 keeps the first and last N layers out of fp8/fp4 (N from
    --num-layers-at-start/end-in-bf16, Megatron's default 1 each, counted only with it)."""
    counts = [
        n for n in ("num-layers-at-start-in-bf16", "num-layers-at-end-in-bf16") if n in values
    ]
    if not values.get("first-last-layers-bf16"):
        if counts:
            w.append(f"--{counts[0]} without --first-last-layers-bf16: Megatron ignores it")
        return {}
    if training.get("precision") != "fp8":
        w.append(
            "--first-last-layers-bf16 without --fp8-format/--fp4-format: every layer is "
            "in 16 bits already"
        )
        return {}
    return {
        "bf16_layers": {
            "start": _get_int(values, "num-layers-at-start-in-bf16", 1),
            "end": _get_int(values, "num-layers-at-end-in-bf16", 1),
        }
    }
