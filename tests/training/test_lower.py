"""Lowering: a layout-only lowering agrees with the full one on what memory reads."""

from __future__ import annotations

from typing import Any

import pytest

from superscale import load_scenario
from superscale.parallelism import resolve
from superscale.training.lower import lower


@pytest.mark.parametrize("model", ["llama3-70b", "deepseek-v3"])
def test_layout_only_lowering_keeps_the_layout(model: str) -> None:
    scenario = load_scenario(
        {
            "model": model,
            "cluster": {"system": "dgx-h100", "count": 64},
            "training": {"seq_len": 4096, "global_batch": 512},
            "parallel": {"tp": 8, "pp": 8, "ep": 8 if model == "deepseek-v3" else 1},
        }
    )
    plan = resolve(scenario)
    full = lower(scenario, plan)
    layout = lower(scenario, plan, passes=False, step=False)
    steps_only = lower(scenario, plan, passes=False)
    for a, b, c in zip(full.stages, layout.stages, steps_only.stages, strict=True):
        assert (a.index, a.layers, a.moe_layers, a.signature) == (
            b.index,
            b.layers,
            b.moe_layers,
            b.signature,
        )
        assert (a.dense_params, a.expert_params) == (b.dense_params, b.expert_params)
        assert a.forward and a.backward and a.step
        assert not (b.forward or b.backward or b.step)
        assert not (c.forward or c.backward) and c.step == a.step


def test_fp32_gradient_reduction_doubles_the_bytes() -> None:
    from superscale import load_scenario
    from superscale.parallelism import resolve
    from superscale.program.ops import CommOp
    from superscale.training.lower import lower

    def reduce_bytes(dtype: str) -> float:
        scenario = load_scenario(
            {
                "model": "llama3-8b",
                "cluster": {"system": "dgx-h100", "count": 4},
                "training": {"seq_len": 4096, "global_batch": 64},
                "parallel": {"tp": 8, "grad_reduce_dtype": dtype},
            }
        )
        program = lower(scenario, resolve(scenario))
        (op,) = [
            o
            for o in program.stages[0].step
            if isinstance(o, CommOp) and o.name == "dp_grad_reduce_scatter"
        ]
        return op.payload_bytes

    assert reduce_bytes("fp32") == 2 * reduce_bytes("bf16")


def test_fp8_recipes_price_their_quantize_traffic() -> None:
    import pytest

    from superscale import load_scenario
    from superscale.errors import SpecError
    from superscale.pipeline import simulate

    def run(recipe: str, system: str = "dgx-h100") -> dict[str, Any]:
        data = {
            "model": "llama3-8b",
            "cluster": {"system": system, "count": 1},
            "training": {"seq_len": 4096, "global_batch": 8, "precision": "fp8",
                         "fp8_recipe": recipe},
            "parallel": {"tp": 8},
        }  # fmt: skip
        return simulate(load_scenario(data)).to_json()

    delayed, current = run("delayed"), run("current")
    assert current["breakdown_s"]["compute"] > delayed["breakdown_s"]["compute"]  # amax pass
    assert run("mxfp8", "dgx-b200")["step_time_s"] > 0
    with pytest.raises(SpecError, match="'mxfp8' needs a chip with MX formats"):
        run("mxfp8")


def _sends(ops: Any) -> int:
    return sum(op.repeat for op in ops if getattr(op, "group", "") == "pp")


def test_every_rank_sends_each_of_its_chunks_on() -> None:
    """With v chunks a rank hands on v activations and v gradients per micro-batch, but
    for the model's last chunk (no forward send) and first (no backward send); its stage
    program sends what its chunk programs do, and keys on how its layers split."""
    scenario = load_scenario(
        {
            "model": "llama3-8b",
            "cluster": {"system": "dgx-h100", "count": 4},
            "training": {"seq_len": 4096, "global_batch": 64},
            "parallel": {"tp": 2, "pp": 4, "virtual_stages": 3, "schedule": "interleaved"},
        }
    )
    plan = resolve(scenario)
    program = lower(scenario, plan)
    p, v = plan.pp, plan.virtual_stages
    for stage in program.stages:
        chunks = [program.virtual[c * p + stage.index] for c in range(v)]
        assert _sends(stage.forward) == sum(_sends(c.forward) for c in chunks)
        assert _sends(stage.backward) == sum(_sends(c.backward) for c in chunks)
        assert _sends(stage.forward) == v - (stage.index == p - 1)
        assert _sends(stage.backward) == v - (stage.index == 0)
        assert stage.chunks == tuple(c.key[:6] for c in chunks)
