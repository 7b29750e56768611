"""Hugging Face config.json import: counts of real configs against their published totals."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from superscale.errors import SpecError
from superscale.models.catalog import models
from superscale.models.hf import SUPPORTED_MODEL_TYPES, from_hf_config

DATA = Path(__file__).parent / "data"

# name -> (published total B, published active B or None, whether the active figure leaves
# out the input embedding, source of the figures)
PUBLISHED: dict[str, tuple[float, float | None, bool, str]] = {
    "llama3-8b": (8.03, None, False, "meta-llama/Meta-Llama-3-8B checkpoint size"),
    "mistral-7b": (7.3, None, False, "Mistral AI, 'Mistral 7B' announcement (7.3B)"),
    "mixtral-8x7b": (46.7, 12.9, False, "Jiang et al. 2024 'Mixtral of Experts' Sec. 2"),
    "qwen2.5-7b": (7.61, None, False, "Qwen/Qwen2.5-7B model card"),
    "qwen1.5-moe-a2.7b": (14.3, 2.7, False, "Qwen/Qwen1.5-MoE-A2.7B model card"),
    "qwen3-8b": (8.2, None, False, "Qwen/Qwen3-8B model card"),
    "qwen3-235b-a22b": (235.0, 22.0, False, "Qwen/Qwen3-235B-A22B model card"),
    "deepseek-v3": (671.0, 36.6, True, "deepseek-ai/DeepSeek-V3 README_WEIGHTS.md"),
    "deepseek-v2-lite": (15.7, None, False, "deepseek-ai/DeepSeek-V2-Lite model card"),
}


def _config(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((DATA / name / "config.json").read_text(encoding="utf-8"))
    return data


def test_every_supported_type_has_a_real_config() -> None:
    types = {_config(d.name)["model_type"] for d in DATA.iterdir() if d.is_dir()}
    assert types == set(SUPPORTED_MODEL_TYPES)
    assert {d.name for d in DATA.iterdir() if d.is_dir()} == set(PUBLISHED)


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_import_matches_published_counts(name: str) -> None:
    total_b, active_b, excludes_embedding, source = PUBLISHED[name]
    model = from_hf_config(_config(name), name=name)
    assert model.name == name
    assert model.params / 1e9 == pytest.approx(total_b, rel=0.01), source
    if active_b is not None:
        active = model.active_params
        if excludes_embedding:
            active -= model.vocab * model.hidden
        assert active / 1e9 == pytest.approx(active_b, rel=0.01), source


@pytest.mark.parametrize(
    ("data_name", "catalog_name"),
    [("qwen3-235b-a22b", "qwen3-235b-a22b"), ("deepseek-v3", "deepseek-v3")],
)
def test_import_matches_catalog(data_name: str, catalog_name: str) -> None:
    imported = from_hf_config(_config(data_name), name=catalog_name)
    entry = models().get(catalog_name)
    assert imported.params == entry.params
    assert imported.active_params == entry.active_params
    assert imported.moe == entry.moe
    assert imported.mla == entry.mla
    assert imported.mtp_layers == entry.mtp_layers


def test_field_mapping_details() -> None:
    qwen3 = from_hf_config(_config("qwen3-8b"), name="qwen3-8b")
    assert (qwen3.qk_norm, qwen3.head_dim, qwen3.kv_heads) == (True, 128, 8)
    qwen_moe = from_hf_config(_config("qwen1.5-moe-a2.7b"), name="q")
    assert qwen_moe.moe is not None
    assert (qwen_moe.moe.shared_experts, qwen_moe.moe.shared_expert_ffn_hidden) == (1, 5632)
    lite = from_hf_config(_config("deepseek-v2-lite"), name="lite")
    assert lite.mla is not None and lite.mla.q_lora_rank is None
    assert lite.moe is not None and lite.moe_layers == 26
    assert lite.kv_heads is None and lite.mtp_layers == 0
    mixtral = from_hf_config(_config("mixtral-8x7b"), name="m")
    assert mixtral.moe is not None and mixtral.moe.expert_ffn_hidden == 14336


def test_unsupported_model_type_names_it() -> None:
    config = _config("llama3-8b") | {"model_type": "gpt_neox"}
    with pytest.raises(SpecError) as info:
        from_hf_config(config, name="x")
    message = str(info.value)
    assert message.startswith("hf_config.model_type: 'gpt_neox' is not supported")
    assert "llama" in message and "deepseek_v3" in message


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"model_type": None}, "hf_config.model_type"),
        ({"hidden_size": None}, "hf_config.hidden_size"),
        ({"num_hidden_layers": "32"}, "hf_config.num_hidden_layers"),
        ({"num_attention_heads": 0}, "hf_config.num_attention_heads"),
        ({"vocab_size": True}, "hf_config.vocab_size"),
        ({"tie_word_embeddings": "no"}, "hf_config.tie_word_embeddings"),
    ],
)
def test_invalid_field_names_it(change: dict[str, Any], field: str) -> None:
    config = {k: v for k, v in (_config("llama3-8b") | change).items() if v is not None}
    with pytest.raises(SpecError) as info:
        from_hf_config(config, name="x")
    assert str(info.value).startswith(f"{field}: ")


def test_moe_field_errors() -> None:
    config = _config("mixtral-8x7b")
    del config["num_local_experts"]
    with pytest.raises(SpecError, match=r"hf_config\.num_local_experts: missing"):
        from_hf_config(config, name="x")
    config = _config("qwen3-235b-a22b") | {"num_experts_per_tok": 256}
    with pytest.raises(SpecError, match=r"top_k \(256\) must be <= experts \(128\)"):
        from_hf_config(config, name="x")
    config = _config("qwen3-235b-a22b") | {"mlp_only_layers": [5]}
    with pytest.raises(SpecError, match=r"hf_config\.mlp_only_layers: only leading"):
        from_hf_config(config, name="x")


def test_leading_mlp_only_layers_become_dense_layers() -> None:
    config = _config("qwen3-235b-a22b") | {"mlp_only_layers": [0, 1]}
    model = from_hf_config(config, name="x")
    assert model.moe is not None and model.moe.dense_layers == 2
    assert model.dense_layers == 2


def test_not_a_mapping() -> None:
    with pytest.raises(SpecError, match="hf_config: must be a JSON object"):
        from_hf_config([], name="x")  # type: ignore[arg-type]
