"""The collective library's fixed latencies come from nccl-tests' small messages."""

from __future__ import annotations

import pytest

from superscale.calibrate.latency import fit_latency, latency_rows
from superscale.collectives.base import LAUNCH_S, STEP_S


def test_rows_are_the_small_single_node_all_reduces() -> None:
    rows = latency_rows()
    assert len(rows) == 33  # 1 KiB to 1 MiB on ND A100 v4, ND H100 v5, ND H200 v5
    assert {r.system for r in rows} == {"dgx-a100", "dgx-h100", "hgx-h200"}
    assert all(r.size_bytes <= 2**20 and 20e-6 < r.measured_s < 60e-6 for r in rows)


def test_shipped_launch_and_step_are_the_fit() -> None:
    """collectives.base's constants are what the fit gives (grid of 0.05 µs), and they
    price the rows to a median error under 10%."""
    fit = fit_latency()
    assert fit.launch_s == pytest.approx(LAUNCH_S, abs=1e-9)
    assert fit.step_s == pytest.approx(STEP_S, abs=1e-9)
    assert fit.median_abs_error_pct < 10.0


def test_shipped_network_latency_is_the_multi_node_fit() -> None:
    """The links catalog's NDR and EFA per-step latency is the 1 µs grid point that prices
    the 100 multi-node nccl-tests rows best, and the grid's ends are worse (a real
    minimum)."""
    from superscale.calibrate.latency import NETWORKS, fit_network_latency, network_rows
    from superscale.hardware.catalog import links

    rows = network_rows()
    assert len(rows) == 100 and all(r.nodes >= 2 for r in rows)
    assert {r.network for r in rows} == set(NETWORKS)  # InfiniBand clusters and AWS EFA
    fit = fit_network_latency(rows)
    assert all(links().get(name).latency_us == fit.latency_us for name in NETWORKS)
    errors = fit.errors_by_latency
    assert errors[min(errors)] > fit.mean_abs_log_error < errors[max(errors)]
    assert fit.mean_abs_log_error < 0.2
