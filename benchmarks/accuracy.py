"""Accuracy of superscale: component checks, then the end-to-end training rows.

Prints (1) each priced component beside its measurement (shipped copy of
shared/reference/components, e.g. DeepEP dispatch/combine bandwidth), with mean and worst
error; (2) predicted against published per training row (training-published.csv), for the
analytical and, without --quick, the event engine; the mean absolute error per source and on
the tuned and held-out splits (the held-out rows set no efficiency parameter), and on the
train and test splits of the one fitted residual (host time per kernel launch). Ends with
one line of JSON holding the figures.
Usage: python benchmarks/accuracy.py [--quick]   (--quick: the analytical engine only)
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

from superscale.calibrate.fit import fit_all
from superscale.calibrate.latency import fit_latency, fit_network_latency
from superscale.costs.host import HOST_LAUNCH_S
from superscale.validate.components import (
    ComponentCheck,
    attention_checks,
    collective_checks,
    dense_gemm_checks,
    dispatch_checks,
    grouped_gemm_checks,
    nvl72_dispatch_checks,
)
from superscale.validate.training import Comparison, compare_all, summarize_errors


def _check_stats(name: str, checks: list[ComponentCheck]) -> dict[str, Any]:
    print(f"{name:<44} {'measured':>9} {'predicted':>9} {'err':>7}")
    for c in checks:
        print(f"{c.label:<44} {c.measured:9.1f} {c.predicted:9.1f} {c.error_pct:+6.1f}%")
    errors = [abs(c.error_pct) for c in checks]
    stats = {
        "rows": len(errors),
        "mean_abs_error_pct": round(sum(errors) / len(errors), 3),
        "max_abs_error_pct": round(max(errors), 3),
    }
    print(f"  {name}: rows {stats['rows']:3d}  mean |err| {stats['mean_abs_error_pct']:5.2f}%\n")
    return stats


def _components() -> dict[str, Any]:
    out: dict[str, Any] = {
        "moe_dispatch": _check_stats("moe_dispatch", dispatch_checks()),
        "gemm_grouped": _check_stats("gemm_grouped", grouped_gemm_checks()),
        "moe_dispatch_nvl72_kernel": _check_stats(
            "moe_dispatch_nvl72 (kernel only)", nvl72_dispatch_checks(kernel_only=True)
        ),
        "moe_dispatch_nvl72_torch_api": _check_stats(
            "moe_dispatch_nvl72 (torch API)", nvl72_dispatch_checks()
        ),
        "gemm_dense_fitted": _check_stats("gemm_dense (fitted profiles)", dense_gemm_checks()),
        "attention_fitted": _check_stats("attention (fitted profiles)", attention_checks()),
        "collectives": _check_stats("collectives (nccl-tests busbw)", collective_checks()),
    }
    print(f"\n{'fit (components -> parameters)':<34} {'rows':>4} {'|err|':>6}  fitted (catalog)")
    for fit in fit_all():
        fitted = ", ".join(f"{k} {v:g}" for k, v in fit.fitted.items())
        catalog = ", ".join(f"{v:g}" for v in fit.catalog.values())
        label = f"{fit.component} {fit.chip} {fit.precision}"
        print(f"{label:<34} {fit.rows:4d} {fit.median_abs_error_pct:5.1f}%  {fitted} ({catalog})")
        entry = out.setdefault(
            f"fit_{fit.component}", {"fits": 0, "rows": 0, "worst_median_abs_error_pct": 0.0}
        )
        entry["fits"] += 1
        entry["rows"] += fit.rows
        entry["worst_median_abs_error_pct"] = max(
            entry["worst_median_abs_error_pct"], fit.median_abs_error_pct
        )
    latency = fit_latency()
    print(
        f"{'latency launch/step (nccl-tests)':<34} {latency.rows:4d} "
        f"{latency.median_abs_error_pct:5.1f}%  launch {latency.launch_s * 1e6:g} us, "
        f"step {latency.step_s * 1e6:g} us"
    )
    network = fit_network_latency()
    print(
        f"{'latency network step (nccl-tests)':<34} {network.rows:4d} "
        f"  |log| {network.mean_abs_log_error:.3f}  {network.latency_us:g} us"
    )
    out["fit_latency"] = {
        "rows": latency.rows,
        "launch_us": round(latency.launch_s * 1e6, 3),
        "step_us": round(latency.step_s * 1e6, 3),
        "median_abs_error_pct": round(latency.median_abs_error_pct, 3),
    }
    out["fit_network_latency"] = {
        "rows": network.rows,
        "latency_us": network.latency_us,
        "mean_abs_log_error": round(network.mean_abs_log_error, 4),
    }
    return out


def _rows(engine: str, profile: str | None = None) -> tuple[list[Comparison], float]:
    start = time.perf_counter()
    rows = compare_all(engine=engine, profile=profile)
    return rows, time.perf_counter() - start


def _print_rows(rows: list[Comparison], engine: str) -> dict[str, Any]:
    print(f"\n== {engine}")
    print(
        f"{'row':>4} {'source':<22} {'model':<26} {'metric':<24} {'pub':>8} {'pred':>8} {'err':>7}"
    )
    for r in rows:
        if r.skipped:
            print(f"{r.row_id:>4} {r.source_key:<22} {r.model[:26]:<26} skipped: {r.skipped}")
            continue
        assert r.published is not None and r.predicted is not None and r.error_pct is not None
        print(
            f"{r.row_id:>4} {r.source_key:<22} {r.model[:26]:<26} {r.metric:<24} "
            f"{r.published:8.1f} {r.predicted:8.1f} {r.error_pct:+6.1f}%"
        )
    summary = summarize_errors(rows)
    named = [(s, st) for s, st in summary["per_source"].items()]
    named += [("tuned rows", summary["tuned"]), ("held-out rows", summary["held_out"])]
    named += [("residual's train split", summary["train_split"])]
    named += [("residual's test split", summary["test_split"])]
    named += [("all rows", summary["overall"])]
    for label, stats in named:
        if stats["rows"]:
            print(
                f"  {label:<24} rows {stats['rows']:3d}  mean |err| "
                f"{stats['mean_abs_error_pct']:5.2f}%  max {stats['max_abs_error_pct']:5.2f}%"
            )
    return summary


def _figures(summary: dict[str, Any]) -> dict[str, Any]:
    def pick(stats: dict[str, Any]) -> dict[str, Any]:
        return {
            "rows": stats["rows"],
            "mean_abs_error_pct": round(stats["mean_abs_error_pct"], 3),
            "max_abs_error_pct": round(stats["max_abs_error_pct"], 3),
        }

    keys = ("overall", "tuned", "held_out", "with_architecture", "train_split", "test_split")
    return {key: pick(summary[key]) for key in keys}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="the analytical engine only")
    args = parser.parse_args()
    components = _components()
    engines = ("analytical",) if args.quick else ("analytical", "event")
    out: dict[str, Any] = {"components": components}
    for engine in engines:
        rows, seconds = _rows(engine)
        summary = _print_rows(rows, f"{engine} engine")
        out[engine] = {
            **_figures(summary),
            "skipped_rows": summary["skipped"],
            "seconds": round(seconds, 3),
        }
    # The same rows with every chip priced from its component-fitted profile: the
    # prediction that no end-to-end row has touched, beside the catalog defaults' above.
    rows, seconds = _rows("analytical", profile="fitted")
    summary = _print_rows(rows, "analytical engine, fitted profiles (cluster.profile: fitted)")
    out["analytical_fitted_profiles"] = {
        **_figures(summary),
        "skipped_rows": summary["skipped"],
        "seconds": round(seconds, 3),
    }
    # the one residual fitted on end-to-end rows (costs/host.py), on its declared split
    out["host_launch_us"] = HOST_LAUNCH_S * 1e6
    analytical = out["analytical"]
    out["mean_abs_error_pct"] = analytical["overall"]["mean_abs_error_pct"]
    out["max_abs_error_pct"] = analytical["overall"]["max_abs_error_pct"]
    print(json.dumps(out))


if __name__ == "__main__":
    main()
