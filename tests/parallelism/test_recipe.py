"""The recipe words `superscale check` shows beside the plan."""

from __future__ import annotations

from pathlib import Path

from superscale import load_scenario
from superscale.parallelism import resolve
from superscale.parallelism.plan import recipe_words

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def test_deepseek_recipe_is_named() -> None:
    scenario = load_scenario(EXAMPLES / "deepseek-v3-2048xh800.yaml")
    words = recipe_words(scenario, resolve(scenario))
    assert "recompute modules layernorm, mla_up_proj, moe_act" in words
    assert "expert dispatch deepep" in words and "Adam moments in bf16" in words
    assert "fp8 activation storage" in words


def test_defaults_say_nothing() -> None:
    scenario = load_scenario(EXAMPLES / "llama3-70b-64xh100.yaml")
    assert recipe_words(scenario, resolve(scenario)) == []
