"""Contract of every registered schedule: one module carries its facts, and a plan is either
refused at load with one reason or priced by both engines and the memory model."""

from __future__ import annotations

from typing import Any

import pytest

from superscale import load_scenario
from superscale.errors import SpecError
from superscale.pipeline import simulate
from superscale.schedules import Shape, schedules

SCHEDULES = sorted(schedules())


def _scenario(schedule: str | None, *, v: int = 1, model: str = "llama3-8b") -> dict[str, Any]:
    parallel: dict[str, Any] = {"tp": 8, "pp": 4, "virtual_stages": v}
    if schedule is not None:
        parallel["schedule"] = schedule
    return {
        "model": model,
        "cluster": {"system": "dgx-h100", "count": 8},
        "training": {"seq_len": 4096, "global_batch": 32},
        "parallel": parallel,
    }


@pytest.mark.parametrize("name", SCHEDULES)
def test_schedule_carries_its_facts(name: str) -> None:
    s = schedules()[name]
    shape = Shape(stages=4, micro_batches=16, chunks=1)
    assert 0 <= s.bubble_factor(4) <= 1
    assert s.weight_copies in (1, 2)
    for stage in range(4):
        assert 1 <= s.in_flight(shape, stage) <= shape.micro_batches
    assert (
        s.problem(Shape(stages=4, micro_batches=16, chunks=2 if name == "interleaved" else 1))
        is None
    )


@pytest.mark.parametrize("name", SCHEDULES)
def test_every_schedule_runs_through_validation_both_engines_and_memory(name: str) -> None:
    v = 2 if name == "interleaved" else 1
    scenario = load_scenario(_scenario(name, v=v))
    analytical = simulate(scenario).to_json()
    event = simulate(scenario, engine="event").to_json()
    assert analytical["step_time_s"] > 0 and event["step_time_s"] > 0
    assert analytical["memory"] == event["memory"]  # one memory model for both engines
    assert analytical["memory"]["activations_gib"] > 0


@pytest.mark.parametrize("name", ["1f1b", "gpipe", "zb-h1", "dualpipe"])
def test_one_chunk_schedules_refuse_virtual_stages_at_load(name: str) -> None:
    # zb-h1 with virtual stages used to pass validation and deadlock the event engine
    with pytest.raises(SpecError, match="virtual_stages must be 1"):
        load_scenario(_scenario(name, v=2))


def test_virtual_stages_default_to_interleaving() -> None:
    scenario = load_scenario(_scenario(None, v=2))
    assert scenario.parallel.schedule == "interleaved"
    assert load_scenario(_scenario(None)).parallel.schedule == "1f1b"


def test_unknown_schedule_names_the_nearest() -> None:
    with pytest.raises(SpecError, match="did you mean 'dualpipe'"):
        load_scenario(_scenario("dualpip"))


def test_dualpipe_on_a_dense_model_is_priced_by_both_engines() -> None:
    scenario = load_scenario(_scenario("dualpipe"))
    one_f_one_b = load_scenario(_scenario("1f1b"))
    for engine in ("analytical", "event"):
        dual = simulate(scenario, engine=engine).to_json()
        base = simulate(one_f_one_b, engine=engine).to_json()
        # half the bubble, twice the weights
        assert dual["breakdown_s"]["pp_bubble"] < base["breakdown_s"]["pp_bubble"]
        assert dual["memory"]["params_gib"] == pytest.approx(2 * base["memory"]["params_gib"])


@pytest.mark.parametrize(("batch", "servers"), [(6, 4), (7, 4)])  # 6 and 7 micro-batches
def test_dualpipe_needs_an_even_number_of_at_least_twice_pp_micro_batches(
    batch: int, servers: int
) -> None:
    data = _scenario("dualpipe")
    data["training"]["global_batch"] = batch
    data["cluster"]["count"] = servers  # dp 1: as many micro-batches as sequences
    with pytest.raises(SpecError, match=r"needs an even number of micro-batches, at least 2·pp"):
        load_scenario(data)


def test_dualpipe_needs_an_even_pp() -> None:
    data = _scenario("dualpipe")
    data["parallel"]["pp"] = 6  # even: accepted
    load_scenario({**data, "cluster": {"system": "dgx-h100", "count": 6}})
    data["parallel"]["pp"] = 5
    data["cluster"]["count"] = 5
    data["training"]["global_batch"] = 40
    with pytest.raises(SpecError, match="needs an even pp"):
        load_scenario(data)


def _moe(**parallel: Any) -> dict[str, Any]:
    return {
        "model": "qwen3-30b-a3b",
        "cluster": {"system": "dgx-h100", "count": 4},
        "training": {"seq_len": 4096, "global_batch": 64},
        "parallel": {"pp": 2, "ep": 16, **parallel},
    }


@pytest.mark.parametrize("engine", ["analytical", "event"])
def test_expert_comm_overlap_hides_all_to_all(engine: str) -> None:
    exposed = simulate(load_scenario(_moe()), engine=engine).to_json()
    hidden = simulate(load_scenario(_moe(ep_comm_overlap=True)), engine=engine).to_json()
    assert hidden["breakdown_s"]["ep_comm"] < exposed["breakdown_s"]["ep_comm"]
    assert hidden["step_time_s"] < exposed["step_time_s"]
