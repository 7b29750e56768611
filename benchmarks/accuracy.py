"""Accuracy of the analytical training model against published runs.

Prints predicted against published per reference row (shared/reference/
training-published.csv, shipped with the package), the mean absolute error per source, and
ends with one line of JSON: {"mean_abs_error_pct", "max_abs_error_pct", "rows", ...}.
Usage: python benchmarks/accuracy.py [--quick]   (--quick: same run; it takes seconds)
"""

from __future__ import annotations

import argparse
import json
import time

from superscale.validate.training import compare_all, summarize_errors


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="accepted for uniformity")
    parser.parse_args()
    start = time.perf_counter()
    rows = compare_all()
    elapsed = time.perf_counter() - start
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
    for source, stats in summary["per_source"].items():
        if stats["rows"]:
            print(
                f"  {source:<24} rows {stats['rows']:3d}  mean |err| "
                f"{stats['mean_abs_error_pct']:5.2f}%  max {stats['max_abs_error_pct']:5.2f}%"
            )
    overall, arch = summary["overall"], summary["with_architecture"]
    print(
        json.dumps(
            {
                "mean_abs_error_pct": round(overall["mean_abs_error_pct"], 3),
                "max_abs_error_pct": round(overall["max_abs_error_pct"], 3),
                "rows": overall["rows"],
                "with_architecture_mean_abs_error_pct": round(arch["mean_abs_error_pct"], 3),
                "with_architecture_max_abs_error_pct": round(arch["max_abs_error_pct"], 3),
                "with_architecture_rows": arch["rows"],
                "skipped_rows": summary["skipped"],
                "seconds": round(elapsed, 3),
            }
        )
    )


if __name__ == "__main__":
    main()
