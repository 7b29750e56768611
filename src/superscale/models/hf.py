"""Import a Hugging Face `config.json` (already parsed into a dict) as a `ModelSpec`.

Supported `model_type`s and what is read from them:

- every type: `num_hidden_layers`, `hidden_size`, `num_attention_heads`,
  `num_key_value_heads` (default: MHA), `head_dim` (default hidden/heads), `intermediate_size`,
  `vocab_size`, `tie_word_embeddings` (default false, the default of every type here).
- `mixtral`: `num_local_experts`, `num_experts_per_tok`; each expert is `intermediate_size`
  wide (Jiang et al. 2024).
- `qwen2_moe`, `qwen3_moe`: `num_experts`, `num_experts_per_tok`, `moe_intermediate_size`,
  `decoder_sparse_step`, `mlp_only_layers` (must be leading layers); `qwen2_moe` also
  `shared_expert_intermediate_size` (one shared expert of that width).
- `deepseek_v2`, `deepseek_v3`: `n_routed_experts`, `n_shared_experts`, `num_experts_per_tok`,
  `n_group`/`topk_group` (group-limited routing, read as nodes per token),
  `moe_intermediate_size`, `first_k_dense_replace`, `moe_layer_freq`; multi-head latent
  attention from `q_lora_rank` (null = full-rank queries), `kv_lora_rank`, `qk_rope_head_dim`,
  `qk_nope_head_dim`, `v_head_dim`; `num_nextn_predict_layers` as MTP modules (DeepSeek-AI
  2024, Sec. 2.2).
- `qwen3`, `qwen3_moe`: per-head RMSNorm on queries and keys (Qwen Team 2025).

`decoder_sparse_step` / `moe_layer_freq` n > 1 maps to `MoE.layer_frequency` (every n-th
layer is MoE); the count matches Hugging Face's when the layers divide evenly by n.

Assumptions: RMSNorm, SwiGLU MLPs and RoPE, as in all these families. Attention biases
(Qwen2's q/k/v biases, `attention_bias`), routing biases and the Qwen2-MoE shared-expert gate
are a few hidden-sized vectors per layer (under 0.01% of the parameters) and are not counted.
The file is data only: nothing in it is evaluated or executed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from superscale.errors import SpecError
from superscale.models.spec import MLA, ModelSpec, MoE
from superscale.spec import spec_error_from

SUPPORTED_MODEL_TYPES: tuple[str, ...] = (
    "llama",
    "mistral",
    "mixtral",
    "qwen2",
    "qwen2_moe",
    "qwen3",
    "qwen3_moe",
    "deepseek_v2",
    "deepseek_v3",
)

_PATH = "hf_config"


def _error(key: str, message: str) -> SpecError:
    return SpecError(message, path=f"{_PATH}.{key}")


def _int(config: Mapping[str, Any], key: str, *, minimum: int = 1) -> int:
    """A required integer field, at least `minimum`."""
    if key not in config or config[key] is None:
        raise _error(key, f"missing (an integer >= {minimum} is required)")
    return _check_int(key, config[key], minimum=minimum)


def _optional_int(
    config: Mapping[str, Any], key: str, *, default: int | None = None, minimum: int = 1
) -> int | None:
    """An optional integer field; absent or null gives `default`."""
    value = config.get(key)
    if value is None:
        return default
    return _check_int(key, value, minimum=minimum)


def _check_int(key: str, value: Any, *, minimum: int) -> int:
    # bool is an int subclass; a JSON true where a size belongs is an error, not 1.
    if isinstance(value, bool) or not isinstance(value, int):
        raise _error(key, f"must be an integer >= {minimum}, got {value!r}")
    if value < minimum:
        raise _error(key, f"must be an integer >= {minimum}, got {value}")
    return value


def _bool(config: Mapping[str, Any], key: str, *, default: bool) -> bool:
    value = config.get(key)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise _error(key, f"must be true or false, got {value!r}")
    return value


def _leading_dense_layers(config: Mapping[str, Any], layers: int) -> int:
    """Qwen-MoE `mlp_only_layers`: accepted when they are the first k layers."""
    value = config.get("mlp_only_layers")
    if value is None:
        return 0
    if not isinstance(value, list) or not all(
        isinstance(i, int) and not isinstance(i, bool) for i in value
    ):
        raise _error("mlp_only_layers", f"must be a list of layer indices, got {value!r}")
    indices = sorted(set(value))
    if indices != list(range(len(indices))) or len(indices) > layers:
        raise _error(
            "mlp_only_layers",
            f"only leading dense layers [0, 1, ..., k-1] are supported, got {value!r}",
        )
    return len(indices)


def _moe(config: Mapping[str, Any], model_type: str, layers: int) -> MoE | None:
    if model_type == "mixtral":
        return MoE(
            experts=_int(config, "num_local_experts"),
            top_k=_int(config, "num_experts_per_tok"),
            expert_ffn_hidden=_int(config, "intermediate_size"),
        )
    if model_type in ("qwen2_moe", "qwen3_moe"):
        shared_ffn = None
        if model_type == "qwen2_moe":
            shared_ffn = _optional_int(config, "shared_expert_intermediate_size", minimum=0)
        return MoE(
            experts=_int(config, "num_experts"),
            top_k=_int(config, "num_experts_per_tok"),
            expert_ffn_hidden=_int(config, "moe_intermediate_size"),
            shared_experts=1 if shared_ffn else 0,
            shared_expert_ffn_hidden=shared_ffn or None,
            dense_layers=_leading_dense_layers(config, layers),
            layer_frequency=_optional_int(config, "decoder_sparse_step", default=1) or 1,
        )
    if model_type in ("deepseek_v2", "deepseek_v3"):
        experts = _optional_int(config, "n_routed_experts")
        if experts is None:
            return None  # a dense DeepSeek model
        return MoE(
            experts=experts,
            top_k=_int(config, "num_experts_per_tok"),
            expert_ffn_hidden=_int(config, "moe_intermediate_size"),
            shared_experts=_optional_int(config, "n_shared_experts", default=0, minimum=0) or 0,
            dense_layers=_optional_int(config, "first_k_dense_replace", default=0, minimum=0) or 0,
            layer_frequency=_optional_int(config, "moe_layer_freq", default=1) or 1,
            max_nodes_per_token=_group_limit(config),
        )
    return None


def _group_limit(config: Mapping[str, Any]) -> int | None:
    """Group-limited routing (topk_group of n_group expert groups, one group per node in
    DeepSeek's training) as the most nodes a token's experts may lie on."""
    groups = _optional_int(config, "n_group")
    chosen = _optional_int(config, "topk_group")
    if groups is None or chosen is None or chosen >= groups:
        return None
    return chosen


def _mla(config: Mapping[str, Any], model_type: str) -> MLA | None:
    if model_type not in ("deepseek_v2", "deepseek_v3"):
        return None
    return MLA(
        q_lora_rank=_optional_int(config, "q_lora_rank"),
        kv_lora_rank=_int(config, "kv_lora_rank"),
        qk_rope_head_dim=_int(config, "qk_rope_head_dim"),
        qk_nope_head_dim=_int(config, "qk_nope_head_dim"),
        v_head_dim=_int(config, "v_head_dim"),
    )


def from_hf_config(config: Mapping[str, Any], *, name: str) -> ModelSpec:
    """Build a `ModelSpec` from a parsed Hugging Face `config.json`.

    Args:
        config: The JSON object of a `config.json` (a dict; nothing in it is executed).
        name: Catalog-style name to give the model, e.g. "qwen3-8b".

    Returns:
        The model spec; sizes in elements, exactly as the config states them.

    Raises:
        SpecError: The model_type is not supported, or a field is missing or invalid; the
            message names the field (``hf_config.<key>``) and what is allowed.
    """
    if not isinstance(config, Mapping):
        raise SpecError(f"must be a JSON object, got {type(config).__name__}", path=_PATH)
    supported = ", ".join(SUPPORTED_MODEL_TYPES)
    model_type = config.get("model_type")
    if model_type is None:
        raise _error("model_type", f"missing (supported: {supported})")
    if model_type not in SUPPORTED_MODEL_TYPES:
        raise _error("model_type", f"{model_type!r} is not supported (supported: {supported})")

    layers = _int(config, "num_hidden_layers")
    try:
        mla = _mla(config, model_type)
        return ModelSpec(
            name=name,
            layers=layers,
            hidden=_int(config, "hidden_size"),
            heads=_int(config, "num_attention_heads"),
            # MLA caches one latent per token; its key/value head count is not a GQA group.
            kv_heads=None if mla else _optional_int(config, "num_key_value_heads"),
            head_dim=None if mla else _optional_int(config, "head_dim"),
            ffn_hidden=_int(config, "intermediate_size"),
            vocab=_int(config, "vocab_size"),
            tied_embeddings=_bool(config, "tie_word_embeddings", default=False),
            qk_norm=model_type in ("qwen3", "qwen3_moe"),
            moe=_moe(config, model_type, layers),
            mla=mla,
            mtp_layers=_optional_int(config, "num_nextn_predict_layers", default=0, minimum=0) or 0,
            source=f"Hugging Face config.json (model_type {model_type})",
        )
    except ValidationError as exc:
        raise spec_error_from(exc, prefix=_PATH) from None
