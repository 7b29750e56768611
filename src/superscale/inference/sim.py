"""Request-level discrete-event simulation of continuous batching, iteration by iteration.

Each engine (a model instance, or one of the pp micro-batch slots of a pipelined instance)
repeats iterations (Orca, Yu et al. 2022): at each boundary it admits waiting requests in
arrival order while their KV cache fits (the prompt and output tokens are reserved at
admission, as a scheduler that never preempts) and fewer than `max_batch` run, then runs one
iteration. With chunked prefill (Sarathi-Serve, Agrawal et al. 2024) an iteration carries one
decode token per running request plus prompt chunks up to the token budget; without it a
prompt runs in a prefill-only iteration that pauses decode (vLLM's default scheduler before
v1). A request's first token comes out of the iteration that finishes its prompt; each later
iteration adds one token. Prefix-cache hits skip that share of the prompt's compute.

Speed: iterations where nothing but decoding happens are not stepped one by one. Their times
are affine in the growing context, so the engine jumps to the next completion in closed
form (a sum of an arithmetic series); an arrival routed to a jumping engine cuts the jump at
the first iteration boundary after it. Requests go to the engine with the fewest unfinished
requests (ties to the lowest index), so the run is deterministic: equal inputs give equal
outputs, and the only randomness is in the workload, seeded there.

In a closed loop (`Requests.users` > 0) the requests are sent in order by `users` clients:
each client sends one at t = 0 and its next think_time_s after the previous one completes
(or is refused); `Outcome.arrival_s` holds the send times the run produced.

With disaggregation (DistServe, Zhong et al. 2024) prefill engines only prefill; a finished
prompt's KV cache moves to the least-loaded decode engine after `latency + bytes/bandwidth`
of the fabric between the pools (no contention between transfers is modelled).

With speculative decoding (the step model's query_tokens q > 1) each decoding request runs q
tokens per iteration and gains the expected accepted tokens A on average, so a request of o
output tokens decodes in ceil((o − 1) / A) iterations after its first token and its context
grows by A per iteration (the mean, not a draw: acceptance is not sampled per request).
Each engine also counts its iterations by size, the drafter's time and its decode batch, so
a pool's time splits into the step model's parts afterwards.
"""

from __future__ import annotations

import heapq
import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from superscale.inference.step import StepModel
from superscale.inference.workload import Requests

Role = Literal["mixed", "prefill", "decode"]
_START, _END, _KV, _ARRIVE = 0, 1, 2, 3


@dataclass(frozen=True, slots=True, kw_only=True)
class EngineConfig:
    """One engine: its role, iteration-time model, KV capacity and batching limits."""

    role: Role
    step: StepModel
    kv_tokens: int
    max_batch: int
    max_batch_tokens: int
    chunked_prefill: bool = True
    prefix_cache_hit_rate: float = 0.0


@dataclass(frozen=True, slots=True, kw_only=True)
class KvTransfer:
    """Time to move one request's KV cache from a prefill to a decode engine."""

    latency_s: float
    s_per_prompt_token: float


@dataclass(frozen=True, slots=True, kw_only=True)
class Outcome:
    """Per-request times (s; NaN for rejected requests) and simulation counters."""

    first_token_s: np.ndarray
    finish_s: np.ndarray
    rejected: np.ndarray
    events: int
    busy_s: float  # engine-seconds spent in iterations, summed over engines
    busy_s_by_role: dict[str, float] = field(default_factory=dict)
    iterations_by_role: dict[str, dict[int, int]] = field(default_factory=dict)  # tokens → count
    draft_s_by_role: dict[str, float] = field(default_factory=dict)
    decode_batch_s_by_role: dict[str, float] = field(default_factory=dict)  # ∫ batch dt
    arrival_s: np.ndarray | None = None  # closed loop: when each client sent each request


class _Engine:
    __slots__ = (
        "a2",
        "a_first",
        "accepted",
        "batch",
        "batch_s",
        "busy",
        "busy_s",
        "cfg",
        "counter",
        "ctx",
        "decode_in",
        "done",
        "draft_s",
        "hist",
        "it_drafting",
        "it_prompt",
        "it_start",
        "it_tokens",
        "jump",
        "k_plan",
        "kv_used",
        "outstanding",
        "prefilling",
        "q",
        "running",
        "version",
        "waiting",
    )

    def __init__(self, cfg: EngineConfig) -> None:
        self.cfg = cfg
        self.waiting: deque[int] = deque()
        self.prefilling: deque[list[int]] = deque()  # [request, compute left, tokens done]
        self.running: list[tuple[int, int]] = []  # heap of (finish counter, request)
        self.batch = 0
        self.ctx = 0.0
        self.counter = 0
        self.kv_used = 0
        self.outstanding = 0
        self.busy = False
        self.version = 0
        self.jump = False
        self.it_start = 0.0
        self.k_plan = 0
        self.a_first = 0.0
        self.a2 = 0.0
        self.decode_in = False
        self.done: list[int] = []
        self.q = cfg.step.query_tokens
        self.accepted = cfg.step.accepted_tokens
        self.busy_s = 0.0
        self.draft_s = 0.0
        self.batch_s = 0.0
        self.it_tokens = 0
        self.it_drafting = 0
        self.it_prompt = 0
        self.hist: dict[int, int] = {}

    def jump_time(self, k: int) -> float:
        return self.a2 * k * k + (self.a_first - self.a2) * k

    def iterations_by(self, elapsed: float) -> int:
        """Fewest iterations of the current jump whose end is at or after `elapsed`."""
        a, b = self.a2, self.a_first - self.a2
        if a > 0:
            k = math.ceil((-b + math.sqrt(b * b + 4 * a * max(elapsed, 0.0))) / (2 * a))
        else:
            k = math.ceil(elapsed / b) if b > 0 else 1
        k = max(k, 1)
        while self.jump_time(k) < elapsed:
            k += 1
        while k > 1 and self.jump_time(k - 1) >= elapsed:
            k -= 1
        return k


class Simulator:
    """Owns the clock, the event queue and the engines of one run."""

    def __init__(
        self,
        requests: Requests,
        engines: list[EngineConfig],
        *,
        transfer: KvTransfer | None = None,
        progress: Callable[[int, int], None] | None = None,
    ) -> None:
        self.arrival = requests.arrival_s.tolist()
        self.prompt = requests.prompt_tokens.tolist()
        self.output = requests.output_tokens.tolist()
        self.engines = [_Engine(c) for c in engines]
        self.entry = [e for e in self.engines if e.cfg.role != "decode"]
        self.decode = [e for e in self.engines if e.cfg.role == "decode"]
        if not self.entry:
            raise ValueError("a deployment needs at least one mixed or prefill engine")
        if any(e.cfg.role == "prefill" for e in self.entry) and not self.decode:
            raise ValueError("prefill engines need decode engines")
        self.transfer = transfer or KvTransfer(latency_s=0.0, s_per_prompt_token=0.0)
        n = len(self.arrival)
        self.first = [math.nan] * n
        self.finish = [math.nan] * n
        self.iters = [0] * n  # decode iterations each request needs after its first token
        self.rejected = [False] * n
        self.heap: list[tuple[float, int, int, int, int]] = []
        self.seq = 0
        self.events = 0
        self.busy_s = 0.0
        self.users, self.think_s = requests.users, requests.think_time_s
        self.next_request = 0  # closed loop: the next request a client sends
        self.progress = progress
        self.settled = 0  # requests finished or refused
        self.report_every = max(1, n // 200)

    # ---- event queue ------------------------------------------------------------------
    def _push(self, t: float, kind: int, a: int, b: int = 0) -> None:
        self.seq += 1
        heapq.heappush(self.heap, (t, self.seq, kind, a, b))

    def run(self) -> Outcome:
        """Simulate until every request has finished or been rejected."""
        arrival, heap = self.arrival, self.heap
        n, i = len(arrival), 0
        index = {id(e): k for k, e in enumerate(self.engines)}
        self._index = index
        if self.users:  # each client sends its first request at t = 0
            i = n  # no arrivals as given: the clients' sends are events
            for _ in range(min(self.users, n)):
                self._send(0.0)
        while True:
            next_arrival = arrival[i] if i < n else math.inf
            if i < n and (not heap or next_arrival <= heap[0][0]):
                self._route(min(self.entry, key=_load), i, next_arrival)
                i += 1
                continue
            if not heap:
                break
            t, _, kind, a, b = heapq.heappop(heap)
            self.events += 1
            if kind == _KV:
                self._route(min(self.decode, key=_load), a, t)
                continue
            if kind == _ARRIVE:
                self._route(min(self.entry, key=_load), a, t)
                continue
            e = self.engines[a]
            if kind == _END:
                if b != e.version:
                    continue  # a cut jump left this stale end behind
                self._end(e, t)
            self._start(e, t)
        busy: dict[str, float] = {}
        draft: dict[str, float] = {}
        batch: dict[str, float] = {}
        hist: dict[str, dict[int, int]] = {}
        for e in self.engines:
            role = e.cfg.role
            busy[role] = busy.get(role, 0.0) + e.busy_s
            draft[role] = draft.get(role, 0.0) + e.draft_s
            batch[role] = batch.get(role, 0.0) + e.batch_s
            counts = hist.setdefault(role, {})
            for tokens, k in e.hist.items():
                counts[tokens] = counts.get(tokens, 0) + k
        return Outcome(
            first_token_s=np.asarray(self.first),
            finish_s=np.asarray(self.finish),
            rejected=np.asarray(self.rejected),
            events=self.events,
            busy_s=self.busy_s,
            busy_s_by_role=busy,
            iterations_by_role=hist,
            draft_s_by_role=draft,
            decode_batch_s_by_role=batch,
            arrival_s=np.asarray(arrival) if self.users else None,
        )

    def _route(self, e: _Engine, r: int, t: float) -> None:
        e.waiting.append(r)
        e.outstanding += 1
        if not e.busy:
            e.busy = True
            self._push(t, _START, self._index[id(e)])
        elif e.jump:
            k = e.iterations_by(t - e.it_start)
            if k < e.k_plan:
                e.k_plan = k
                e.version += 1
                self._push(e.it_start + e.jump_time(k), _END, self._index[id(e)], e.version)

    def _send(self, t: float) -> None:
        """Closed loop: a client sends the next request at t."""
        j = self.next_request
        if j < len(self.arrival):
            self.next_request += 1
            self.arrival[j] = t
            self._push(t, _ARRIVE, j)

    def _done(self, t: float) -> None:
        """A request completed (or was refused) at t: its client sends again after thinking."""
        self.settled += 1
        if self.progress is not None and (
            self.settled % self.report_every == 0 or self.settled == len(self.arrival)
        ):
            self.progress(self.settled, len(self.arrival))
        if self.users:
            self._send(t + self.think_s)

    # ---- one engine ---------------------------------------------------------------------
    def _reject(self, e: _Engine, r: int, t: float) -> None:
        self.rejected[r] = True
        e.outstanding -= 1
        self._done(t)

    def _admit(self, e: _Engine, t: float) -> None:
        cfg, prompt, output = e.cfg, self.prompt, self.output
        while e.waiting and e.batch + len(e.prefilling) < cfg.max_batch:
            r = e.waiting[0]
            need = prompt[r] if cfg.role == "prefill" else prompt[r] + output[r]
            if need > cfg.kv_tokens:
                e.waiting.popleft()
                self._reject(e, r, t)
                continue
            if e.kv_used + need > cfg.kv_tokens:
                break
            e.waiting.popleft()
            e.kv_used += need
            if cfg.role == "decode":
                self._join(e, r, t)
            else:
                compute = max(1, round(prompt[r] * (1.0 - cfg.prefix_cache_hit_rate)))
                e.prefilling.append([r, compute, prompt[r] - compute])

    def _join(self, e: _Engine, r: int, t: float) -> None:
        """Request r starts decoding on e (its first token is out)."""
        if self.output[r] <= 1:
            self.finish[r] = t
            e.kv_used -= self.prompt[r] + self.output[r]
            e.outstanding -= 1
            self._done(t)
            return
        iters = self.output[r] - 1
        if e.accepted != 1.0:
            iters = max(1, math.ceil(iters / e.accepted))
        self.iters[r] = iters
        heapq.heappush(e.running, (e.counter + iters, r))
        e.batch += 1
        e.ctx += self.prompt[r] + 1

    def _start(self, e: _Engine, t: float) -> None:
        self._admit(e, t)
        cfg, step = e.cfg, e.cfg.step
        q = e.q
        if e.prefilling and (not cfg.chunked_prefill or e.batch * q < cfg.max_batch_tokens):
            decode_in = e.batch > 0 and cfg.chunked_prefill
            budget = cfg.max_batch_tokens - (e.batch * q if decode_in else 0)
            tokens, pairs, done = 0, 0.0, []
            for entry in e.prefilling:
                if budget <= 0:
                    break
                left = entry[1]
                if cfg.chunked_prefill:
                    c = min(left, budget)
                elif tokens == 0 or left <= budget:
                    c = left
                else:
                    break
                pairs += c * (entry[2] + c / 2)
                entry[1] -= c
                entry[2] += c
                tokens += c
                budget -= c
                if entry[1] == 0:
                    done.append(entry[0])
            for _ in done:
                e.prefilling.popleft()
            drafting = e.batch if decode_in else 0
            prompt_tokens = tokens
            tokens += drafting * q
            sampled = len(done) + drafting * q
            dt = step.iteration_s(
                tokens,
                sampled=sampled,
                context=e.ctx if decode_in else 0.0,
                pairs=pairs,
                drafting=drafting,
                prompt=prompt_tokens,
            )
            e.jump, e.decode_in, e.done, e.it_start = False, decode_in, done, t
            e.it_tokens, e.it_drafting, e.it_prompt = tokens, drafting, prompt_tokens
            e.version += 1
            self._push(t + dt, _END, self._index[id(e)], e.version)
            return
        if e.batch:
            k = e.running[0][0] - e.counter
            b = e.batch
            e.a_first = (
                step.base(b * q)
                + step.draft(b)
                + step.sample_s * b * q
                + step.kv_s_per_token * e.ctx
            )
            e.a2 = step.kv_s_per_token * b * e.accepted / 2
            e.jump, e.k_plan, e.it_start = True, k, t
            e.it_tokens, e.it_drafting, e.it_prompt = b * q, b, 0
            e.version += 1
            self._push(t + e.jump_time(k), _END, self._index[id(e)], e.version)
            return
        e.busy = False

    def _end(self, e: _Engine, t: float) -> None:
        prompt, output = self.prompt, self.output
        dt = t - e.it_start
        self.busy_s += dt
        e.busy_s += dt
        e.batch_s += e.it_drafting * dt
        k = e.k_plan if e.jump else 1
        e.hist[e.it_tokens] = e.hist.get(e.it_tokens, 0) + k
        if e.it_drafting and e.q > 1:
            e.draft_s += k * e.cfg.step.draft(e.it_drafting)
        if e.it_prompt:
            e.draft_s += e.cfg.step.prompt_draft_s_per_token * e.it_prompt
        if e.jump:
            e.counter += e.k_plan
            e.ctx += e.batch * e.accepted * e.k_plan
        else:
            if e.decode_in:
                e.counter += 1
                e.ctx += e.batch * e.accepted
            for r in e.done:
                self.first[r] = t
                if e.cfg.role == "prefill":
                    e.kv_used -= prompt[r]
                    e.outstanding -= 1
                    if output[r] <= 1:
                        self.finish[r] = t
                        self._done(t)
                    else:
                        tr = self.transfer
                        self._push(t + tr.latency_s + tr.s_per_prompt_token * prompt[r], _KV, r)
                else:
                    self._join(e, r, t)
            e.done = []
        running = e.running
        while running and running[0][0] <= e.counter:
            _, r = heapq.heappop(running)
            self.finish[r] = t
            e.batch -= 1
            e.ctx -= prompt[r] + 1 + self.iters[r] * e.accepted
            e.kv_used -= prompt[r] + output[r]
            e.outstanding -= 1
            self._done(t)


def _load(e: _Engine) -> int:
    return e.outstanding


def simulate(
    requests: Requests,
    engines: list[EngineConfig],
    *,
    transfer: KvTransfer | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> Outcome:
    """Run the requests through the engines; deterministic for equal inputs. `progress`
    is called with (requests settled, requests) about 200 times a run."""
    return Simulator(requests, engines, transfer=transfer, progress=progress).run()
