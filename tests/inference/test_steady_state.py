"""Steady-state serving throughput: the completions between the 10th and 90th percentile
completion times, over that window. It is the offered rate below saturation, and stays so
when a long drain drags completed/makespan down."""

from __future__ import annotations

import numpy as np
import pytest

from superscale import load_scenario
from superscale.inference.serve import serve, steady_state
from superscale.inference.workload import parse_trace


def test_window_and_rate_by_hand() -> None:
    # 101 completions one second apart (t = 0..100 s), then one at 1,000 s: the window
    # runs from the 11th to the 92nd completion (indices floor(0.1·101) = 10 and
    # ceil(0.9·101) = 91), 81 gaps over 81 s, so 1 request/s; the straggler is left out.
    finish = np.concatenate([np.arange(101.0), [1000.0]])
    prompt, output = np.full(102, 200), np.full(102, 50)
    steady = steady_state(finish, prompt, output, origin_s=-2.0)
    assert steady is not None
    assert steady["window_s"] == [12.0, 93.0]  # from the origin's clock
    assert steady["requests"] == 81
    assert steady["requests_per_s"] == pytest.approx(1.0)
    assert steady["input_tokens_per_s"] == pytest.approx(200.0)
    assert steady["output_tokens_per_s"] == pytest.approx(50.0)
    assert len(finish) / (finish.max() - finish.min()) < 0.11  # completed over makespan
    assert steady_state(finish[:19], prompt[:19], output[:19]) is None  # too few
    assert steady_state(np.zeros(50), prompt[:50], output[:50]) is None  # no window


def _trace(rate_per_s: float, n: int, *, last_output: int) -> str:
    rows = [f"{i / rate_per_s:.6f},500,100" for i in range(n - 1)]
    rows.append(f"{(n - 1) / rate_per_s:.6f},500,{last_output}")
    return "arrival_s,prompt_tokens,output_tokens\n" + "\n".join(rows) + "\n"


def test_uniform_workload_below_saturation_is_the_offered_rate() -> None:
    # Llama-3-8B on two H100s takes ~10 requests/s of 500 + 100 tokens with room to
    # spare; the last request decodes 6,000 tokens, a drain of tens of seconds.
    scenario = load_scenario(
        {
            "model": "llama3-8b",
            "cluster": {"system": "dgx-h100", "count": 1},
            "serving": {"plan": {"tp": 1, "dp": 2}},
        }
    )
    rate = 10.0
    short = serve(scenario, requests=parse_trace(_trace(rate, 1500, last_output=100))).to_json()
    long = serve(scenario, requests=parse_trace(_trace(rate, 1500, last_output=6000))).to_json()
    for run in (short, long):
        steady = run["steady_state"]
        assert steady["requests_per_s"] == pytest.approx(rate, rel=0.03)
        assert steady["output_tokens_per_s"] == pytest.approx(100 * rate, rel=0.03)
        start, end = steady["window_s"]
        assert 0 < start < end < run["duration_s"]
    drain_s = long["duration_s"] - short["duration_s"]
    assert drain_s > 20  # the long decode finishes well after the others
    completed_over_makespan = long["throughput"]["requests_per_s"]
    assert completed_over_makespan == pytest.approx(1500 / long["duration_s"])
    assert long["steady_state"]["requests_per_s"] > 1.1 * completed_over_makespan
