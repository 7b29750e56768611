"""Tiny shared fixtures: a 2-layer model and an 8-GPU cluster (SimPy's `env` in spirit)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from superscale import Scenario, load_scenario
from superscale.pipeline import simulate

Results = tuple[dict[str, Any], dict[str, Any]]


@pytest.fixture
def tiny_model() -> dict[str, Any]:
    return {
        "name": "tiny",
        "layers": 2,
        "hidden": 256,
        "heads": 4,
        "ffn_hidden": 1024,
        "vocab": 1000,
    }


@pytest.fixture
def tiny_scenario_dict(tiny_model: dict[str, Any]) -> dict[str, Any]:
    return {
        "model": tiny_model,
        "cluster": {"system": "dgx-h100", "count": 1},
        "training": {"seq_len": 512, "global_batch": 16},
        "parallel": {"tp": 2, "pp": 2},
    }


@pytest.fixture
def tiny_scenario(tiny_scenario_dict: dict[str, Any]) -> Scenario:
    return load_scenario(tiny_scenario_dict)


def _engines_agree(scenario: Scenario) -> Results:
    """Both engines' results for `scenario`, after checking the event engine's step within
    3% of the analytical one and each breakdown term within 5% of the step."""
    analytical = simulate(scenario).to_json()
    event = simulate(scenario, engine="event").to_json()
    step = analytical["step_time_s"]
    assert event["step_time_s"] == pytest.approx(step, rel=0.03)
    for term, seconds in analytical["breakdown_s"].items():
        assert abs(event["breakdown_s"][term] - seconds) <= 0.05 * step, term
    return analytical, event


@pytest.fixture
def engines_agree() -> Callable[[Scenario], Results]:
    return _engines_agree
