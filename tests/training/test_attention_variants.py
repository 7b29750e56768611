"""Attention variants: document masking in packed sequences (`training.document_mask`: the
kernel's work follows Σ doc_len², the FLOP count keeps the full-sequence convention) and
GPT-OSS's attention sinks (`model.attention_sinks`: a parameter per head, no charged work)."""

from __future__ import annotations

from typing import Any

import pytest

from superscale import load_scenario
from superscale.errors import SpecError
from superscale.models.catalog import models
from superscale.models.spec import ModelSpec
from superscale.parallelism import resolve
from superscale.parallelism.plan import recipe_words
from superscale.pipeline import simulate
from superscale.program.ops import ComputeOp
from superscale.training.layer import FLASH_BLOCK
from superscale.training.lower import lower

SEQ = 8192


def _scenario(mask: Any = None, model: str = "llama3-8b") -> Any:
    training: dict[str, Any] = {"seq_len": SEQ, "global_batch": 8}
    if mask is not None:
        training["document_mask"] = mask
    return load_scenario(
        {
            "model": model,
            "cluster": {"system": "dgx-h100", "count": 1},
            "training": training,
            "parallel": {"tp": 1},
        }
    )


def _attention(scenario: Any) -> ComputeOp:
    forward = lower(scenario, resolve(scenario)).stages[0].forward
    return next(op for op in forward if isinstance(op, ComputeOp) and op.kind == "attention")


def test_work_follows_the_sum_of_squared_document_lengths() -> None:
    whole = _attention(_scenario())
    for mask, squares in (
        ({"mean_doc_tokens": 2048}, 4 * 2048**2),  # four equal documents
        ({"mean_doc_tokens": 2048, "length_cv": 1.0}, SEQ * 2048 * 2),  # s·mean·(1 + cv²)
    ):
        masked = _attention(_scenario(mask))
        assert masked.counted_flops == whole.counted_flops  # the convention: full s²
        share = (squares + FLASH_BLOCK * SEQ) / (2 * SEQ**2)  # Σ (d² + block·d) / 2s²
        assert masked.flops == pytest.approx(whole.counted_flops * share, rel=1e-12)
    # one document is the plain causal kernel: (s + block) / 2s
    one = _attention(_scenario({"mean_doc_tokens": SEQ}))
    assert one.flops == pytest.approx(whole.flops, rel=1e-12)


def test_windowed_layers_take_the_smaller_of_window_and_document() -> None:
    """GPT-OSS: 128-token windows on half its layers; documents of 64 tokens bound both
    kinds of layer to their documents."""
    full = _attention(_scenario(model="gpt-oss-120b"))
    short = _attention(_scenario({"mean_doc_tokens": 64}, model="gpt-oss-120b"))
    causal = (SEQ * 64 + FLASH_BLOCK * SEQ) / (2 * SEQ**2)
    assert short.flops == pytest.approx(full.counted_flops * causal, rel=1e-12)


@pytest.mark.parametrize("engine", ["analytical", "event"])
def test_masking_shortens_the_step_and_keeps_model_flops(engine: str) -> None:
    whole = simulate(_scenario(), engine=engine)
    masked = simulate(_scenario({"mean_doc_tokens": 1024}), engine=engine)
    assert masked.step_time_s < whole.step_time_s
    assert masked.model_flops_per_gpu == pytest.approx(whole.model_flops_per_gpu)
    assert masked.mfu > whole.mfu  # same counted FLOPs in less time


def test_named_and_checked() -> None:
    scenario = _scenario({"mean_doc_tokens": 2048, "length_cv": 0.5})
    assert "document-masked attention, mean 2,048 tokens, length cv 0.5" in recipe_words(
        scenario, resolve(scenario)
    )
    with pytest.raises(SpecError, match="mean_doc_tokens"):
        _scenario({"mean_doc_tokens": SEQ + 1})


@pytest.mark.parametrize("engine", ["analytical", "event"])
def test_attention_sinks_add_a_parameter_per_head_and_no_time(engine: str) -> None:
    """The sink is one logit per head in the softmax denominator: per query and head one
    more exp-add, b·h·q terms against the kernel's 2·b·h·q·s·(d_qk + d_v) FLOPs."""
    spec = models().get("gpt-oss-120b")
    assert spec.attention_sinks
    plain = ModelSpec.model_validate({**spec.model_dump(), "attention_sinks": False})
    assert spec.params - plain.params == spec.heads * spec.layers  # 64 · 36 = 2,304

    def run(model: Any) -> Any:
        return simulate(
            load_scenario(
                {
                    "model": model.model_dump(mode="json"),
                    "cluster": {"system": "dgx-h100", "count": 1},
                    "training": {"seq_len": 4096, "global_batch": 8},
                    "parallel": {"ep": 8},
                }
            ),
            engine=engine,
        )

    with_sinks, without = run(spec), run(plain)
    assert with_sinks.step_time_s == pytest.approx(without.step_time_s, rel=1e-6)
    d = spec.d_head
    assert 1 / (2 * 4096 * (d + d)) < 1e-4  # the uncharged share of the attention work
