from __future__ import annotations

from typing import Any

import pytest

import superscale
from superscale import SpecError, load_scenario


def test_public_api_is_pinned() -> None:
    assert sorted(superscale.__all__) == [
        "InfeasiblePlan",
        "Scenario",
        "SpecError",
        "load_scenario",
    ]


def test_dp_is_derived(tiny_scenario_dict: dict[str, Any]) -> None:
    scenario = load_scenario(tiny_scenario_dict)
    assert scenario.dp == 2


@pytest.mark.parametrize(
    ("patch", "expected"),
    [
        ({"parallel": {"tpp": 2}}, "did you mean 'tp'"),
        ({"parallel": {"tp": 3}}, "does not divide"),
        ({"parallel": {"dp": 3}}, "parallel.dp"),
        ({"training": {"seq_len": 0, "global_batch": 16}}, "training.seq_len"),
        ({"training": {"seq_len": 512, "global_batch": 16, "precision": "fp9"}}, "'fp8'"),
        ({"cluster": {"system": "h100", "count": 1}}, "did you mean 'dgx-h100'"),
    ],
)
def test_bad_fields_name_their_path(
    tiny_scenario_dict: dict[str, Any], patch: dict[str, Any], expected: str
) -> None:
    with pytest.raises(SpecError, match=expected):
        load_scenario({**tiny_scenario_dict, **patch})


def test_yaml_alias_bomb_is_refused(tmp_path: Any) -> None:
    lines = ['a: &a ["x","x","x","x","x","x","x","x","x"]']
    for i in range(1, 12):
        prev = chr(ord("a") + i - 1)
        cur = chr(ord("a") + i)
        lines.append(f"{cur}: &{cur} [*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev}]")
    path = tmp_path / "bomb.yaml"
    path.write_text("\n".join(lines))
    with pytest.raises(SpecError, match="alias"):
        load_scenario(path)
