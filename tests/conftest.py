"""Tiny shared fixtures: a 2-layer model and an 8-GPU cluster (SimPy's `env` in spirit)."""

from __future__ import annotations

from typing import Any

import pytest

from superscale import Scenario, load_scenario


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
