"""Requests to serve: Poisson, offline or closed-loop arrivals with sampled lengths, or a trace.

Poisson arrivals have exponential gaps at the given rate (the MLPerf Server scenario and
`sglang.bench_serving --request-rate`); offline requests all wait at t = 0 (MLPerf Offline,
request rate inf). A closed loop (vLLM's benchmark --max-concurrency, GenAI-Perf's
concurrency mode) has `users` clients, each sending its next request think_time_s after its
previous one completes; its arrival times come out of the simulation (`sim.py`), so they
satisfy Little's law N = throughput · (latency + think time). Lengths are drawn from the
workload's distributions and clipped to [min, max]; a lognormal of mean μ and log-sd σ has
log-mean ln μ − σ²/2. μ is the mean before clipping, so a cap lowers what the requests
average (a 1,024-token cap takes 300 to 282 at σ = 0.8); `lognormal_mean_for` gives the μ
whose clipped lengths average a stated mean. Everything is drawn from one
`numpy.random.Generator` seeded by the workload's seed, so a seed fixes the requests. A
trace is CSV text with columns arrival_s, prompt_tokens, output_tokens (a header row, any
order); the CLI reads the file (`superscale.readers`, at most `readers.MAX_TRACE_BYTES`),
this module only parses text. A trace holds at most `max_requests` rows, arrivals within
`spec.MAX_SECONDS` and lengths within `spec.MAX_SEQ_LEN`, the bounds a generated workload
has.
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass

import numpy as np

from superscale.errors import SpecError
from superscale.scenario.serving import LengthSpec, WorkloadSpec
from superscale.spec import MAX_REQUESTS, MAX_SECONDS, MAX_SEQ_LEN

DEFAULT_REQUESTS = 2000
TRACE_COLUMNS = ("arrival_s", "prompt_tokens", "output_tokens")


@dataclass(frozen=True, slots=True, kw_only=True)
class Requests:
    """Arrival times (s, sorted) and token counts of every request."""

    arrival_s: np.ndarray
    prompt_tokens: np.ndarray
    output_tokens: np.ndarray
    users: int = 0  # closed loop: concurrent clients (0: open loop, arrivals as given)
    think_time_s: float = 0.0  # closed loop: a client's pause after each completion

    def __len__(self) -> int:
        return len(self.arrival_s)


def clipped_lognormal_mean(mean: float, sigma: float, low: float, high: float) -> float:
    """Mean of a lognormal of mean `mean` and log-sd `sigma` clipped to [low, high]: what
    `sample_lengths` draws on average (before rounding), since its `mean` is the unclipped
    one."""
    mu = math.log(mean) - sigma**2 / 2

    def cdf(x: float) -> float:
        return 0.5 * (1.0 + math.erf(x / math.sqrt(2.0)))

    log_low, log_high = math.log(low), math.log(high)
    below = low * cdf((log_low - mu) / sigma)
    above = high * (1.0 - cdf((log_high - mu) / sigma))
    inside = mean * (
        cdf((log_high - mu - sigma**2) / sigma) - cdf((log_low - mu - sigma**2) / sigma)
    )
    return below + inside + above


def lognormal_mean_for(target: float, sigma: float, low: float, high: float) -> float:
    """The unclipped mean a lognormal `LengthSpec` needs for its lengths, clipped to
    [low, high], to average `target` tokens: a source states the mean of the requests it
    sent, which are already within its length filter.

    Raises:
        ValueError: `target` outside (low, high), which no clipped lognormal averages.
    """
    if not low < target < high:
        raise ValueError(f"a mean of {target} tokens is not inside ({low}, {high})")
    lo, hi = target, target
    while clipped_lognormal_mean(lo, sigma, low, high) > target:
        lo /= 2.0
    while clipped_lognormal_mean(hi, sigma, low, high) < target:
        lo, hi = hi, 2.0 * hi
    for _ in range(100):  # the clipped mean grows with the unclipped one: bisect
        mid = 0.5 * (lo + hi)
        if clipped_lognormal_mean(mid, sigma, low, high) < target:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


def sample_lengths(spec: LengthSpec, n: int, rng: np.random.Generator) -> np.ndarray:
    """`n` integer lengths from `spec`, clipped to [min, max]."""
    mean = spec.mean
    if spec.distribution == "fixed":
        values = np.full(n, mean)
    elif spec.distribution == "uniform":
        values = rng.uniform(spec.min, max(2 * mean - spec.min, spec.min), n)
    elif spec.distribution == "exponential":
        values = rng.exponential(mean, n)
    else:
        mu = np.log(mean) - spec.sigma**2 / 2
        values = rng.lognormal(mu, spec.sigma, n)
    upper = spec.max if spec.max is not None else np.inf
    lengths: np.ndarray = np.clip(np.rint(values), spec.min, upper).astype(np.int64)
    return lengths


def generate(spec: WorkloadSpec, *, requests: int | None = None) -> Requests:
    """Draw the requests of a Poisson or offline workload (not trace: see `parse_trace`).

    Args:
        requests: overrides the spec's request count.
    """
    if spec.arrival == "trace":
        raise SpecError("serving.workload: a trace workload is read with parse_trace")
    rng = np.random.default_rng(spec.seed)
    if spec.arrival == "poisson" and spec.duration_s is not None and requests is None:
        assert spec.rate_per_s is not None  # WorkloadSpec checks poisson has a rate
        n = max(1, int(rng.poisson(spec.rate_per_s * spec.duration_s)))
    else:
        n = requests or spec.requests or DEFAULT_REQUESTS
    if spec.arrival == "poisson":
        assert spec.rate_per_s is not None
        arrivals = np.cumsum(rng.exponential(1.0 / spec.rate_per_s, n))
    else:  # offline; closed: placeholders, the simulator sets each when its client sends it
        arrivals = np.zeros(n)
    return Requests(
        arrival_s=arrivals,
        prompt_tokens=sample_lengths(spec.prompt_tokens, n, rng),
        output_tokens=sample_lengths(spec.output_tokens, n, rng),
        users=(spec.users or 0) if spec.arrival == "closed" else 0,
        think_time_s=spec.think_time_s,
    )


def with_rate(reqs: Requests, rate_per_s: float, seed: int) -> Requests:
    """The same requests arriving as a Poisson process at `rate_per_s` (capacity search)."""
    rng = np.random.default_rng(seed)
    arrivals = np.cumsum(rng.exponential(1.0 / rate_per_s, len(reqs)))
    return Requests(
        arrival_s=arrivals, prompt_tokens=reqs.prompt_tokens, output_tokens=reqs.output_tokens
    )


def parse_trace(text: str, *, origin: str = "trace", max_requests: int = MAX_REQUESTS) -> Requests:
    """Parse trace CSV text (arrival_s, prompt_tokens, output_tokens) into requests.

    Args:
        text: the CSV text, header first.
        origin: the trace's name in messages.
        max_requests: the most rows read; a longer trace is refused.

    Raises:
        SpecError: naming the line and column of the first bad value, or a trace of more
            than `max_requests` rows.
    """
    reader = csv.DictReader(io.StringIO(text))
    columns = set(reader.fieldnames or ())
    missing = [c for c in TRACE_COLUMNS if c not in columns]
    if missing:
        raise SpecError(
            f"{origin}: missing column(s) {', '.join(missing)} (needs {', '.join(TRACE_COLUMNS)})"
        )
    arrivals: list[float] = []
    prompts: list[int] = []
    outputs: list[int] = []
    for line, row in enumerate(reader, start=2):
        if len(arrivals) >= max_requests:
            raise SpecError(
                f"{origin}: more than {max_requests:,} requests (line {line}); shorten the "
                "trace or raise the cap (serve --max-requests N)"
            )
        try:
            t = float(row["arrival_s"])
            p, o = int(row["prompt_tokens"]), int(row["output_tokens"])
        except (TypeError, ValueError):
            raise SpecError(f"{origin}, line {line}: not a number in {dict(row)}") from None
        if not (0 <= t <= MAX_SECONDS and 1 <= p <= MAX_SEQ_LEN and 1 <= o <= MAX_SEQ_LEN):
            raise SpecError(
                f"{origin}, line {line}: arrival_s must be in 0..{MAX_SECONDS:g} s and token "
                f"counts in 1..{MAX_SEQ_LEN:,}"
            )
        arrivals.append(t)
        prompts.append(p)
        outputs.append(o)
    if not arrivals:
        raise SpecError(f"{origin}: no requests")
    order = np.argsort(np.asarray(arrivals), kind="stable")
    return Requests(
        arrival_s=np.asarray(arrivals, dtype=np.float64)[order],
        prompt_tokens=np.asarray(prompts, dtype=np.int64)[order],
        output_tokens=np.asarray(outputs, dtype=np.int64)[order],
    )
