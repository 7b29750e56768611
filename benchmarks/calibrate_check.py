"""Measured against predicted step time of a real GPT training step on this machine's device.

Profiles the device (superscale.calibrate.bench.measure), trains a Llama-style GPT for a few
steps in PyTorch (superscale.calibrate.check: ~320 M parameters; --quick: ~5 M and the small
measurement grid), and prints superscale's prediction for the same model, batch and profile.
Needs PyTorch (pip install 'superscale[torch]'). Ends with one line of JSON:
{"measured_step_s", "predicted_step_s", "error_pct", "device", ...}.
Usage: python benchmarks/calibrate_check.py [--quick] [--device cpu|cuda|cuda:N] [--steps N]
"""

from __future__ import annotations

import argparse
import json
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small grid, tiny GPT (CI)")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    parser.add_argument("--steps", type=int, default=3, help="timed training steps")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    from superscale.calibrate.bench import measure, resolve_device
    from superscale.calibrate.check import CHECK_GPT, QUICK_GPT, check

    device = resolve_device(args.device)
    start = time.perf_counter()
    profile = measure(device, quick=args.quick, seed=args.seed)
    measured_s = time.perf_counter() - start
    print(f"profile: {profile.device.name}, {measured_s:.1f} s")
    for precision, tflops in profile.peak_tflops.items():
        print(f"  best matmul {precision}: {tflops:.3f} TFLOP/s")
    print(f"  best copy: {profile.best_memory_bytes_per_s / 1e9:.2f} GB/s")
    cfg = QUICK_GPT if args.quick else CHECK_GPT
    report = check(profile, device, cfg=cfg, steps=args.steps, seed=args.seed)
    total_s = time.perf_counter() - start
    params_m = report["model"]["params"] / 1e6
    print(
        f"GPT {params_m:.1f} M params, batch {cfg.batch} x seq {cfg.seq_len}: "
        f"measured {report['measured_step_s']:.4f} s, predicted "
        f"{report['predicted_step_s']:.4f} s ({report['error_pct']:+.1f}%)"
    )
    print(
        f"peak memory: measured {report['measured_peak_gib']:.3f} GiB, predicted "
        f"{report['predicted_peak_gib']:.3f} GiB ({report['memory_error_pct']:+.1f}%)"
    )
    for key, value in report["predicted_breakdown_s"].items():
        if value:
            print(f"  predicted {key}: {value:.4f} s")
    print(
        json.dumps(
            {
                "measured_step_s": round(report["measured_step_s"], 5),
                "predicted_step_s": round(report["predicted_step_s"], 5),
                "error_pct": round(report["error_pct"], 2),
                "device": report["device"],
                "params_m": round(params_m, 1),
                "measured_peak_gib": round(report["measured_peak_gib"], 3),
                "predicted_peak_gib": round(report["predicted_peak_gib"], 3),
                "memory_error_pct": round(report["memory_error_pct"], 2),
                "quick": args.quick,
                "seconds": round(total_s, 1),
            }
        )
    )


if __name__ == "__main__":
    main()
