"""Pipeline layouts: Megatron's layout strings, uneven first/last stages, and the lowering."""

from __future__ import annotations

from typing import Any

import pytest

from superscale import load_scenario
from superscale.errors import SpecError
from superscale.parallelism import resolve
from superscale.scenario.layout import parse_layout
from superscale.training.lower import lower


def test_layout_strings_expand_without_evaluation() -> None:
    assert parse_layout("Et*3|(tttt|)*2tttL") == (3, 4, 4, 3)
    assert parse_layout("E|t*2|t t|L") == (0, 2, 2, 0)
    for bad in ("Et|__import__('os')", "(tt|*3", "t*|t", "t*9999999"):
        with pytest.raises(SpecError, match=r"parallel\.pipeline_layout"):
            parse_layout(bad)


def _llama(parallel: dict[str, Any]) -> dict[str, Any]:
    return {
        "model": "llama3.1-405b",
        "cluster": {"system": "dgx-h100", "count": 128},
        "training": {"seq_len": 8192, "global_batch": 512},
        "parallel": {"tp": 8, "pp": 16, **parallel},
    }


def test_llama3_405b_counts_embedding_and_loss_as_layers() -> None:
    # 126 layers on 16 stages x 8 virtual stages: pp·v = 128 > 126, so without a layout the
    # plan is refused; Meta's layout gives the first and last chunks one slot each
    with pytest.raises(SpecError, match="exceeds the model's 126 layers"):
        load_scenario(_llama({"virtual_stages": 8}))
    scenario = load_scenario(_llama({"virtual_stages": 8, "pipeline_layout": "E|(t|)*126L"}))
    program = lower(scenario, resolve(scenario))
    layers = [chunk.layers for chunk in program.virtual]
    assert layers[0] == layers[-1] == 0 and set(layers[1:-1]) == {1}
    assert sum(chunk.layers for chunk in program.virtual) == 126


def test_uneven_first_and_last_stages() -> None:
    scenario = load_scenario(_llama({"first_stage_layers": 7, "last_stage_layers": 7}))
    stages = lower(scenario, resolve(scenario)).stages
    # the 14 middle stages split the other 112 layers evenly
    assert [s.layers for s in stages] == [7] + [8] * 14 + [7]
    with pytest.raises(SpecError, match="do not split evenly over the other 14 stages"):
        load_scenario(_llama({"first_stage_layers": 6, "last_stage_layers": 6}))


def test_layout_must_match_the_plan() -> None:
    with pytest.raises(SpecError, match="pipeline_layout: 3 chunks, but pp·virtual_stages = 16"):
        load_scenario(_llama({"pipeline_layout": [42, 42, 42]}))
    with pytest.raises(SpecError, match="pipeline_layout: 16 layers, but the model has 126"):
        load_scenario(_llama({"pipeline_layout": [1] * 16}))
