"""Compare serving predictions with published MLPerf and SGLang/vLLM results, row by row.

The reference table (`data/inference-published.csv`, a copy of shared/reference) holds
MLPerf Inference v4.1 Llama-2-70B (Offline and Server, 8×H100, 8×H200, 1×B200, 8×MI300X) and
the SGLang v0.3 vs vLLM v0.6 benchmark of Llama-3.1 8B (1×A100) and 70B (4×H100, TP4). Each
row becomes a serving scenario from what the row states: its hardware and GPU count, its
precision, its workload, and the scheduler of its software stack (`STACKS`, from each
stack's documented defaults, like the training validation's stacks). Nothing is fitted per
row; the chip catalog's efficiency parameters serve every row, or, with a profile
(`cluster.profile`: 'fitted' for the component-fitted profiles, or a file), that
profile's kernel rates, as `superscale validate --profile` does for the training rows.

Workloads (lengths lognormal within each source's filter, set so that the clipped lengths
average what the source states: `LengthSpec.mean` is the unclipped mean):
- MLPerf Llama-2-70B draws from 24,576 OpenOrca samples with inputs capped at 1,024 tokens
  (MLCommons inference repository, language/llama2-70b README). The mean input is about
  294 tokens (estimate: recalled from the MLCommons task-force write-up, and consistent with
  the rows: a 1,024-token mean input would need more than the H200's fp8 peak to reach row
  19's throughput). The mean output each submission generated and the samples its Offline
  run issued are read from its own log (`MLPERF_OUTPUT_TOKENS`, `MLPERF_QUERY_SAMPLES`):
  the set repeated 2-11 times to fill the run's minimum duration, so its drain at the end
  is as short a share of the run as it was.
- ShareGPT through sglang.bench_serving: mean input 224 and output 198 tokens (a published
  bench_serving run: 369,103 input and 326,408 output tokens over 1,648 requests,
  sgl-project/sglang issue #2805); rows 32-35 imply 194 output tokens per request
  (tokens/s over requests/s). Lengths are lognormal (σ = 1) within bench_serving's filter
  (4 ≤ prompt ≤ 1,024 tokens).
Metrics: Offline/Server/output throughput rows compare output tokens/s; MLPerf Server is
the largest Poisson rate meeting TTFT p99 ≤ 2 s and TPOT p99 ≤ 200 ms times the mean output;
median E2E rows compare the simulated median end-to-end latency. The throughput mean
absolute error is the figure of merit; latency rows are reported beside it.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

from superscale.errors import InfeasiblePlan, SpecError
from superscale.hardware.profile import FITTED, load_profile
from superscale.inference.deploy import resolve
from superscale.inference.plan_search import max_rate
from superscale.inference.serve import run_deployment
from superscale.inference.workload import generate, lognormal_mean_for
from superscale.scenario import load_scenario
from superscale.scenario.serving import SloSpec


def _lengths(mean: float, sigma: float, low: int, high: int) -> dict[str, Any]:
    """A lognormal length distribution within a source's filter [low, high] whose lengths
    average the source's `mean` (`LengthSpec.mean` is the unclipped mean: stating the
    source's figure there drew requests 4-6% shorter than it sent)."""
    unclipped = round(lognormal_mean_for(mean, sigma, low, high), 1)
    return {"distribution": "lognormal", "mean": unclipped, "sigma": sigma, "min": low,
            "max": high}  # fmt: skip


# Output tokens per sample each MLPerf submission generated: its Offline log's "Tokens per
# second" over "Samples per second" (the rows' mlperf_log_summary.txt, v4.1): H100
# 24,524.9 / 84.4792, H200 31,302.7 / 107.477, B200 11,264.4 / 41.1075, MI300X 23,514.8 /
# 80.15. The Server rows of a system ran the same model on the same samples.
MLPERF_OUTPUT_TOKENS = {"H100": 290.3, "H200": 291.3, "B200": 274.0, "MI300X": 293.4}
# Samples the Offline performance run issued in its one query (the same logs'
# samples_per_query: the 24,576-sample set repeated to fill the minimum duration)
MLPERF_QUERY_SAMPLES = {"H100": 200640, "H200": 274560, "B200": 100320, "MI300X": 52800}


def openorca(output_tokens: float) -> dict[str, Any]:
    """The MLPerf OpenOrca samples' lengths, with the mean output a submission generated."""
    return {"prompt_tokens": _lengths(294, 0.8, 1, 1024),
            "output_tokens": _lengths(output_tokens, 0.8, 1, 1024)}  # fmt: skip


def _mlperf_system(row: dict[str, str]) -> str:
    """The MLPerf submission's GPU (a key of `MLPERF_OUTPUT_TOKENS`)."""
    system = next((k for k in MLPERF_OUTPUT_TOKENS if k in row["hardware"]), None)
    if system is None:
        raise SpecError(f"no MLPerf log figures for '{row['hardware']}'")
    return system


SHAREGPT = {
    "prompt_tokens": _lengths(224, 1.0, 4, 1024),
    "output_tokens": _lengths(198, 1.0, 4, 1024),
}
MLPERF_SERVER_SLO = SloSpec(ttft_p99_s=2.0, tpot_p99_s=0.2)
SERVER_REQUESTS = 6000

# Host time per running request per iteration of a Python scheduler (estimate, one value
# for every Python stack): batch bookkeeping, sampling and detokenization of each request.
PYTHON_REQUEST_OVERHEAD_US = 20.0
# Scheduler of each software stack, from its documented defaults.
STACKS: dict[str, dict[str, Any]] = {
    # TensorRT-LLM in-flight batching, chunked context, batch limited by KV memory
    "TensorRT-LLM": {"max_batch": 2048, "max_batch_tokens": 8192, "chunked_prefill": True},
    # MLPerf AMD vLLM-based harness: large batches, chunked prefill; vLLM's Python
    # scheduler under a Python SUT (v4.1, August 2024: before vLLM overlapped its output
    # processing), so it pays the Python per-request time as the vLLM rows do
    "vLLM-based (PySUT)": {
        "max_batch": 2048,
        "max_batch_tokens": 8192,
        "chunked_prefill": True,
        "request_overhead_us": PYTHON_REQUEST_OVERHEAD_US,
    },
    # SGLang v0.3: chunked_prefill_size 8192, max running requests from KV memory; prefill
    # batches run apart from decode (--enable-mixed-chunk is off by default); the Python
    # scheduler is not overlapped with the GPU before v0.4's overlap scheduler
    "SGLang": {
        "max_batch": 4096,
        "max_batch_tokens": 8192,
        "chunked_prefill": False,
        "request_overhead_us": PYTHON_REQUEST_OVERHEAD_US,
    },
    # vLLM v0.6: max_num_seqs 256; multi-step scheduling without chunked prefill
    "vLLM": {
        "max_batch": 256,
        "max_batch_tokens": 8192,
        "chunked_prefill": False,
        "request_overhead_us": PYTHON_REQUEST_OVERHEAD_US,
    },
}
SYSTEMS = {"H100": "dgx-h100", "H200": "hgx-h200", "B200": "dgx-b200", "MI300X": "mi300x-8x",
           "A100": "dgx-a100"}  # fmt: skip
MODELS = {
    "Llama 2 70B": "llama2-70b",
    "Llama 3.1 8B": "llama3.1-8b",
    "Llama 3.1 70B": "llama3.1-70b",
}


@dataclass(frozen=True, slots=True, kw_only=True)
class Comparison:
    """One reference row: what was published and what superscale predicts."""

    row_id: int
    source_key: str
    model: str
    hardware: str
    framework: str
    workload: str
    metric: str
    kind: str  # "throughput" or "latency"
    unit: str
    published: float
    predicted: float | None
    plan: str = ""
    skipped: str = ""

    @property
    def error_pct(self) -> float | None:
        if self.predicted is None:
            return None
        return 100.0 * (self.predicted - self.published) / self.published


def reference_rows() -> list[dict[str, str]]:
    """The shipped copy of shared/reference/inference-published.csv."""
    text = (
        resources.files("superscale.validate")
        .joinpath("data/inference-published.csv")
        .read_text(encoding="utf-8")
    )
    return list(csv.DictReader(io.StringIO(text)))


def _stack(framework: str) -> dict[str, Any]:
    if framework.startswith("vLLM ("):
        return STACKS["vLLM"]
    return STACKS[framework]


def _precision(row: dict[str, str]) -> str:
    """The GEMM precision the row's submission ran: the first it names. NVIDIA's MLPerf
    v4.1 B200 entry ("FP4/FP8" in the table) ran Llama 2 70B in FP4 on Blackwell's tensor
    cores, as NVIDIA's MLPerf v4.1 blog and the press on it state (Tom's Hardware, 2024-08-28:
    "Nvidia's Blackwell processor used FP4 precision")."""
    text = row["precision"].upper()
    named = [(text.index(p), p) for p in ("FP4", "FP8") if p in text]
    return min(named)[1].lower() if named else "bf16"


def _scenario(
    row: dict[str, str], *, tp: int, workload: dict[str, Any], profile: str | None = None
) -> dict[str, Any]:
    system = next((s for k, s in SYSTEMS.items() if k in row["hardware"]), None)
    model = next((m for k, m in MODELS.items() if row["model"].startswith(k)), None)
    if system is None or model is None:
        raise SpecError(f"no catalog entry for '{row['hardware']}' / '{row['model']}'")
    gpus = int(row["num_accelerators"])
    cluster: dict[str, Any] = {"system": system, "count": 1}
    if profile is not None:
        cluster["profile"] = profile
    return {
        "model": model,
        "cluster": cluster,
        "serving": {
            "precision": _precision(row),
            "plan": {"tp": tp, "dp": gpus // tp},
            "scheduler": _stack(row["framework"]),
            "workload": workload,
        },
    }


@cache
def _mlperf_offline(
    row_key: tuple[tuple[str, str], ...], profile: str | None = None
) -> tuple[float, int]:
    """Best offline output tokens/s over tp (dp = GPUs/tp), as submitters tune it; and tp."""
    row = dict(row_key)
    gpus = int(row["num_accelerators"])
    system = _mlperf_system(row)
    workload = {"arrival": "offline", "requests": MLPERF_QUERY_SAMPLES[system],
                **openorca(MLPERF_OUTPUT_TOKENS[system])}  # fmt: skip
    best, best_tp = 0.0, 0
    tp = 1
    while tp <= gpus:
        try:
            scenario = load_scenario(_scenario(row, tp=tp, workload=workload, profile=profile))
            dep = resolve(scenario)  # checks
        except (SpecError, InfeasiblePlan):
            dep = None
        if dep is not None and dep.fits:
            assert scenario.serving is not None
            reqs = generate(scenario.serving.workload)
            out = run_deployment(dep, reqs, SloSpec())["throughput"]["output_tokens_per_s"]
            if out > best:
                best, best_tp = out, tp
        tp *= 2
    return best, best_tp


def _predict(row: dict[str, str], profile: str | None) -> tuple[float | None, str, str]:
    """(prediction, plan label, skip reason) for one row."""
    key = tuple(sorted((k, row[k]) for k in ("hardware", "model", "framework", "precision",
                                              "num_accelerators")))  # fmt: skip
    metric = row["metric"]
    if row["source_key"].startswith("mlperf"):
        offline, tp = _mlperf_offline(key, profile)
        if tp == 0:
            return None, "", "the model does not fit in any plan"
        plan = f"tp{tp}×dp{int(row['num_accelerators']) // tp}"
        if metric.startswith("Offline"):
            return offline, plan, ""
        workload = {"arrival": "offline", "requests": SERVER_REQUESTS,
                    **openorca(MLPERF_OUTPUT_TOKENS[_mlperf_system(row)])}  # fmt: skip
        scenario = load_scenario(_scenario(row, tp=tp, workload=workload, profile=profile))
        dep = resolve(scenario)
        reqs = generate(scenario.serving.workload)  # type: ignore[union-attr]
        cap = max_rate(dep, reqs, MLPERF_SERVER_SLO)
        return cap.rate_per_s * float(reqs.output_tokens.mean()), plan, ""
    gpus = int(row["num_accelerators"])
    tp = gpus
    if "offline" in row["workload"]:
        workload = {"arrival": "offline", "requests": 5000, **SHAREGPT}
    else:
        rate = float(row["workload"].split("request rate")[1].split()[0])
        workload = {"arrival": "poisson", "rate_per_s": rate,
                    "requests": int(300 * rate), **SHAREGPT}  # fmt: skip
    scenario = load_scenario(_scenario(row, tp=tp, workload=workload, profile=profile))
    dep = resolve(scenario)
    reqs = generate(scenario.serving.workload)  # type: ignore[union-attr]
    metrics = run_deployment(dep, reqs, SloSpec())
    plan = f"tp{tp}"
    if "latency" in metric:
        return metrics["latency_s"]["e2e"]["p50"] * 1e3, plan, ""
    return metrics["throughput"]["output_tokens_per_s"], plan, ""


def compare_row(row: dict[str, str], *, profile: str | None = None) -> Comparison:
    """One row predicted (its chips priced by `profile` when one is given) or skipped."""
    kind = "latency" if "latency" in row["metric"] else "throughput"
    try:
        predicted, plan, skipped = _predict(row, profile)
    except (SpecError, InfeasiblePlan) as exc:
        predicted, plan, skipped = None, "", str(exc)
    return Comparison(
        row_id=int(row["row_id"]),
        source_key=row["source_key"],
        model=row["model"],
        hardware=row["hardware"],
        framework=row["framework"],
        workload=row["workload"],
        metric=row["metric"],
        kind=kind,
        unit=row["unit"],
        published=float(row["value"]),
        predicted=predicted,
        plan=plan,
        skipped=skipped,
    )


def compare_all(
    progress: Callable[[int, int], None] | None = None, *, profile: str | None = None
) -> list[Comparison]:
    """Every reference row, predicted or skipped with a reason; `progress(done, total)`
    after each row; `profile` ('fitted' or a file) prices every chip, as cluster.profile.

    Raises:
        SpecError: an unreadable or invalid profile file.
    """
    if profile is not None and profile != FITTED:
        load_profile(profile)  # a bad file is one error here, not a skip on every row
    rows = reference_rows()
    out = []
    for done, row in enumerate(rows, 1):
        out.append(compare_row(row, profile=profile))
        if progress is not None:
            progress(done, len(rows))
    return out


def _stats(rows: list[Comparison]) -> dict[str, Any]:
    errs = [abs(r.error_pct) for r in rows if r.error_pct is not None]
    return {
        "rows": len(errs),
        "mean_abs_error_pct": sum(errs) / len(errs) if errs else None,
        "max_abs_error_pct": max(errs) if errs else None,
    }


def summarize_errors(rows: list[Comparison]) -> dict[str, Any]:
    """Mean and worst absolute error over throughput rows, latency rows, and per source."""
    return {
        "throughput": _stats([r for r in rows if r.kind == "throughput"]),
        "latency": _stats([r for r in rows if r.kind == "latency"]),
        "per_source": {
            key: _stats([r for r in rows if r.source_key == key and r.kind == "throughput"])
            for key in sorted({r.source_key for r in rows})
        },
    }
