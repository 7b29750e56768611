"""First and last layers in bf16 under fp8 training (`training.bf16_layers`, Megatron-LM's
--first-last-layers-bf16): their GEMMs priced in bf16 with no quantize traffic, the
stages holding them slower by hand, both engines and the search alike, and the flags."""

from __future__ import annotations

import json
import random
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import yaml

from superscale import load_scenario
from superscale.cli import main
from superscale.costs.compute import compute_time_s, shape_factor
from superscale.errors import SpecError
from superscale.hardware.spec import Chip
from superscale.parallelism import resolve
from superscale.parallelism.megatron import parse_megatron
from superscale.parallelism.plan import recipe_words
from superscale.pipeline import simulate
from superscale.program.ops import ComputeOp
from superscale.scenario import Scenario
from superscale.search.evaluate import evaluate_batch, evaluate_one
from superscale.search.space import enumerate_plans
from superscale.simulate.analytical import estimate_step
from superscale.training import layer
from superscale.training.layer import FP8_CAST_BYTES
from superscale.training.lower import bf16_layer_ids, bf16_shard, lower, shard_of


def _dict(
    bf16: dict[str, int] | None = None, *, pp: int = 1, gpus: int = 1, model: str = "llama3-8b"
) -> dict[str, Any]:
    training: dict[str, Any] = {
        "seq_len": 4096,
        "global_batch": 8,
        "precision": "fp8",
        "fp8_recipe": "current",
    }
    if bf16 is not None:
        training["bf16_layers"] = bf16
    return {
        "model": model,
        # a slice of one DGX: no data parallelism, so no gradient traffic shifts the step
        "cluster": {"system": "dgx-h100", "count": 1, "gpus_per_system": gpus},
        "training": training,
        "parallel": {"tp": 1, "pp": pp},
    }


def _scenario(bf16: dict[str, int] | None = None, **kw: Any) -> Scenario:
    return load_scenario(_dict(bf16, **kw))


def _layer_gemms(scenario: Scenario) -> list[ComputeOp]:
    ops = layer.forward_layer_ops(
        scenario.model, shard_of(scenario, resolve(scenario)), moe_layer=False
    )
    return [op for op in ops if isinstance(op, ComputeOp) and op.kind == "gemm"]


def _layer_delta_s(scenario: Scenario) -> float:
    """One layer's forward + backward time in bf16 less in fp8: only its GEMMs differ
    (attention runs in 16 bits under every recipe, elementwise kernels are unchanged)."""
    chip = scenario.cluster.chip
    delta = 0.0
    for gemm in _layer_gemms(scenario):
        for op in (gemm, gemm.backward()):
            bf16 = replace(op, low_dtype="bf16")
            delta += compute_time_s(bf16, chip, "fp8") - compute_time_s(op, chip, "fp8")
    return delta


def _roofline_s(chip: Chip, op: ComputeOp, precision: str, cast_bytes: float) -> float:
    """A GEMM by hand: flops at the precision's peak · matmul fraction · shape factor ·
    sustained clock, against its HBM bytes (fp8 operands at one byte), then the quantize
    kernels' `cast_bytes` per input element, which run before it, plus a launch overhead
    per kernel (3 with a quantize: amax/scale and cast per input)."""
    eff = chip.efficiency
    assert op.shape is not None
    m, n, k = op.shape
    rate = chip.peak_flops(precision) * chip.matmul_fraction(precision)
    rate *= shape_factor(op.shape, eff.matmul_half_dim) * eff.sustained_clock_fraction
    hbm = chip.hbm_bandwidth_bytes_per_s * eff.memory_fraction
    width = 1.0 if precision == "fp8" else 2.0
    mem_s = (op.hbm_bytes - op.operand_bytes * (1.0 - width / 2.0)) / hbm
    cast_s = cast_bytes * m * k / hbm
    kernels = 3 if cast_bytes else 1
    return max(2.0 * m * n * k / rate, mem_s) + cast_s + kernels * eff.kernel_overhead_us * 1e-6


def test_bf16_layer_gemms_run_at_the_bf16_rate_without_casts() -> None:
    """llama3-8b's mlp_up (4096 × 28672 × 4096) in a bf16 layer is priced as the bf16
    roofline, with no quantize traffic or kernels; in an fp8 layer as the fp8 roofline
    with current scaling's 6 B per input element: same work, same bytes, ~1.75× apart."""
    scenario = _scenario({"start": 1, "end": 1})
    chip = scenario.cluster.chip
    shard = shard_of(scenario, resolve(scenario))
    kept = layer.forward_layer_ops(scenario.model, bf16_shard(shard), moe_layer=False)
    fp8 = {op.name: op for op in _layer_gemms(scenario)}
    gemms = [op for op in kept if isinstance(op, ComputeOp) and op.kind == "gemm"]
    assert {op.name for op in gemms} == set(fp8) and all(op.low_dtype == "bf16" for op in gemms)
    for op in gemms:  # the same work and bytes: only the dtype moves
        assert (op.flops, op.hbm_bytes, op.shape) == (
            fp8[op.name].flops,
            fp8[op.name].hbm_bytes,
            fp8[op.name].shape,
        )
    up = next(op for op in gemms if op.name == "mlp_up")
    assert up.shape == (4096, 28672, 4096)
    bf16_s = compute_time_s(up, chip, "fp8")
    fp8_s = compute_time_s(fp8["mlp_up"], chip, "fp8")
    assert bf16_s == pytest.approx(_roofline_s(chip, up, "bf16", 0.0), rel=1e-12)
    assert fp8_s == pytest.approx(
        _roofline_s(chip, up, "fp8", FP8_CAST_BYTES["current"]), rel=1e-12
    )
    assert 1.5 < bf16_s / fp8_s < 2.0


@pytest.mark.parametrize("engine", ["analytical", "event"])
def test_step_rises_by_the_kept_layers_time(engine: str) -> None:
    """One stage, no data parallelism: the step is m·(forward + backward) + the optimizer,
    so keeping N first and N last layers in bf16 adds m·2N·Δ, Δ the per-layer difference
    of the layer's eight GEMMs (qkv, attn_out, mlp_up, mlp_down; forward and backward)."""
    fp8 = _scenario()
    m = resolve(fp8).micro_batches
    delta = _layer_delta_s(fp8)
    assert delta > 0
    base = simulate(fp8, engine=engine).step_time_s
    for n in (1, 2):
        kept = simulate(_scenario({"start": n, "end": n}), engine=engine).step_time_s
        assert kept - base == pytest.approx(m * 2 * n * delta, rel=1e-9)
    uneven = simulate(_scenario({"start": 0, "end": 3}), engine=engine).step_time_s
    assert uneven - base == pytest.approx(m * 3 * delta, rel=1e-9)


def test_the_stage_holding_them_becomes_critical() -> None:
    """pp 4 of llama3-8b's 32 layers (8 a stage), the first 10 kept in bf16: stage 0 holds
    8 of them, stage 1 two, so stages 1 and 2 are no longer twins. pp 2 (16 a stage), the
    first 12 kept: all fp8 the last stage (logits) is critical; with the kept layers stage
    0 is (its t₀ + 12Δ passes t₁). 1F1B: T = m·max tᵢ + Σ tᵢ − max tᵢ."""
    kept4 = _scenario({"start": 10, "end": 0}, pp=4, gpus=4)
    program4 = lower(kept4, resolve(kept4))
    assert [s.bf16_layers for s in program4.stages] == [8, 2, 0, 0]
    assert len(program4.distinct_stages()) == 4  # stages 1 and 2 no longer twins
    fp8 = _scenario(pp=2, gpus=2)
    kept = _scenario({"start": 12, "end": 0}, pp=2, gpus=2)
    program = lower(kept, resolve(kept))
    assert [s.bf16_layers for s in program.stages] == [12, 0]
    plan = resolve(fp8)
    m, delta = plan.micro_batches, _layer_delta_s(fp8)
    before = estimate_step(lower(fp8, plan), plan, fp8.cluster, "fp8")
    after = estimate_step(program, resolve(kept), kept.cluster, "fp8")
    assert (before.critical_stage, after.critical_stage) == (1, 0)
    t = [s.micro_batch_s for s in before.stages]
    t_after = [t[0] + 12 * delta, t[1]]
    assert [s.micro_batch_s for s in after.stages] == pytest.approx(t_after, rel=1e-12)

    def pipeline(times: list[float]) -> float:
        return m * max(times) + sum(times) - max(times)

    rise = pipeline(t_after) - pipeline(t)
    assert after.step_time_s - before.step_time_s == pytest.approx(rise, rel=1e-9)
    # the event engine runs the 1F1B schedule itself: uneven stages come within the 3%
    # the engines' grid test holds them to, and it sees the same rise's direction
    event = simulate(kept, engine="event").step_time_s
    assert event == pytest.approx(after.step_time_s, rel=0.03)
    assert event > simulate(fp8, engine="event").step_time_s


def test_global_layer_numbers_under_interleaving_and_moe() -> None:
    """By global layer number: with 2 virtual stages of 4 layers each on pp 4, layer 0 is
    in rank 0's first chunk and layer 31 in rank 3's second; an MoE model's kept layers
    count among its MoE layers."""
    scenario = load_scenario(
        {**_dict({"start": 1, "end": 1}, pp=4, gpus=4), "parallel": {"pp": 4, "virtual_stages": 2}}
    )
    program = lower(scenario, resolve(scenario))
    assert [s.bf16_layers for s in program.stages] == [1, 0, 0, 1]
    assert [c.bf16_layers for c in program.virtual] == [1, 0, 0, 0, 0, 0, 0, 1]
    moe = load_scenario(_dict({"start": 2, "end": 1}, pp=2, gpus=2, model="qwen3-30b-a3b"))
    stages = lower(moe, resolve(moe)).stages
    assert [(s.bf16_layers, s.bf16_moe_layers) for s in stages] == [(2, 2), (1, 1)]
    assert bf16_layer_ids(moe.model, moe.require_training()) == {0, 1, moe.model.layers - 1}


@pytest.mark.parametrize("model", ["llama3-8b", "qwen3-30b-a3b"])
def test_search_prices_them_as_the_scalar_pipeline(model: str) -> None:
    """The vectorized search composes stages from a kept layer's pieces; sampled plans
    (pipelines included) match `simulate` on the same candidate."""
    from superscale.hardware.catalog import systems
    from superscale.hardware.spec import Cluster

    base = {**_dict({"start": 2, "end": 3}, model=model), "cluster": "dgx-h100"}
    base.pop("parallel")
    cluster = Cluster(system=systems().get("dgx-h100"), count=2)
    candidates = enumerate_plans(base, clusters=[cluster]).candidates
    batch = evaluate_batch(candidates, prune_memory=False)
    picked = random.Random(7).sample(range(len(candidates)), 12)
    assert any(candidates[i]["parallel"]["pp"] > 1 for i in picked)
    for i in picked:
        scalar = evaluate_one(candidates[i])
        assert scalar["error"] is None, scalar["error"]
        assert batch[i]["step_time_s"] == pytest.approx(scalar["step_time_s"], rel=1e-9)


def test_from_megatron_maps_the_flags() -> None:
    shape = (
        "--num-layers 8 --hidden-size 1024 --num-attention-heads 8 --seq-length 2048 "
        "--vocab-size 32000 --global-batch-size 8 --fp8-format e4m3 --fp8-recipe tensorwise "
    )
    cluster = {"system": "dgx-h100", "count": 1}
    run = parse_megatron(shape + "--first-last-layers-bf16", cluster=cluster)
    assert run.scenario["training"]["bf16_layers"] == {"start": 1, "end": 1}  # Megatron's default
    assert not run.ignored
    run = parse_megatron(
        shape + "--first-last-layers-bf16 --num-layers-at-start-in-bf16 0 "
        "--num-layers-at-end-in-bf16 2",
        cluster=cluster,
    )
    assert run.scenario["training"]["bf16_layers"] == {"start": 0, "end": 2}
    scenario = load_scenario(run.scenario)
    assert recipe_words(scenario, resolve(scenario))[-1] == "first 0 and last 2 layers in bf16"
    # counts without the flag, or the flag without fp8: Megatron ignores them, and so do we
    run = parse_megatron(shape + "--num-layers-at-end-in-bf16 2", cluster=cluster)
    assert "bf16_layers" not in run.scenario["training"]
    assert any("without --first-last-layers-bf16" in w for w in run.warnings)
    bf16 = shape.replace("--fp8-format e4m3 --fp8-recipe tensorwise", "--bf16")
    run = parse_megatron(bf16 + "--first-last-layers-bf16", cluster=cluster)
    assert "bf16_layers" not in run.scenario["training"]
    assert any("in 16 bits already" in w for w in run.warnings)
    with pytest.raises(SpecError, match="must be >= 0") as info:
        parse_megatron(shape + "--num-layers-at-start-in-bf16 -1", cluster=cluster)
    assert info.value.path == "--num-layers-at-start-in-bf16"
    # Megatron-Core refuses delayed scaling (its default recipe) with bf16 layers, as we do
    delayed = shape.replace(" --fp8-recipe tensorwise", "")
    with pytest.raises(SpecError, match="delayed scaling cannot keep layers in bf16"):
        load_scenario(
            parse_megatron(delayed + "--first-last-layers-bf16", cluster=cluster).scenario
        )


@pytest.mark.parametrize(
    ("training", "path", "message"),
    [
        ({"precision": "bf16"}, "training.bf16_layers", "needs precision fp8"),
        ({"fp8_recipe": "delayed"}, "training.bf16_layers", "delayed scaling cannot"),
        ({"bf16_layers": {"start": 20, "end": 13}}, "", r"20 \+ 13 exceeds the model's 32 layers"),
        ({"bf16_layers": {"start": -1}}, "training.bf16_layers.start", "greater than or equal"),
        ({"bf16_layers": {"first": 1}}, "training.bf16_layers", "unknown key 'first'"),
    ],
)
def test_bad_input_names_the_field(training: dict[str, Any], path: str, message: str) -> None:
    data = _dict({"start": 1, "end": 1})
    data["training"].update(training)
    with pytest.raises(SpecError, match=message) as info:
        load_scenario(data)
    assert info.value.path == path


def test_check_shows_the_field(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "kept.yaml"
    path.write_text(yaml.safe_dump(_dict({"start": 1, "end": 2})))
    assert main(["check", str(path)]) == 0
    assert "first 1 and last 2 layers in bf16" in " ".join(capsys.readouterr().out.split())
    assert main(["check", str(path), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["training"]["bf16_layers"] == {"start": 1, "end": 2}
