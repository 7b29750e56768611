"""DualPipe (DeepSeek-AI 2024, DeepSeek-V3 report Sec. 3.2.1, Fig. 5; the order of its
reference implementation, deepseek-ai/DualPipe).

Micro-batches enter from both ends: half flow from rank 0 to rank p−1 through each rank's
chunk 0, half from rank p−1 to rank 0 through chunk 1, so each rank holds two chunks (two
copies of its share of the weights' layout) and the two directions fill each other's
bubbles. A rank of the first half calls direction 0 its first phase, one of the second half
direction 1. With h = min(r, p−1−r) and n micro-batches (n/2 per direction), rank r runs:

  1. 2·(p/2 − h − 1) forwards of phase 0,
  2. h + 1 pairs of forwards (phase 0, phase 1),
  3. p/2 − h − 1 times: backward of phase 1 with its weight gradient deferred (zero
     bubble), the deferred weight gradient, a forward of phase 1,
  4. n/2 − p + h + 1 times: forward 0 beside backward 1, forward 1 beside backward 0 (the
     steady state, where one direction's expert all-to-all hides behind the other's work),
  5. p/2 − h − 1 times: backward 1, forward 1 beside backward 0,
  6. h + 1 pairs of backwards (1, 0), deferring weight gradients from the middle on,
  7. p/2 − h − 1 times: a deferred weight gradient, backward 0 with its own deferred,
  8. the remaining deferred weight gradients.

It needs an even p and an even n of at least 2p. The engine runs the tasks in this order;
a weight-gradient task may also fill a wait (zero-bubble scheduling).
"""

from __future__ import annotations

from superscale import vec
from superscale.schedules.base import Shape, Task, register


@register("dualpipe")
class DualPipe:
    """Two opposite pipelines over two chunks per rank, in DualPipe's eight steps."""

    name = "dualpipe"
    split_backward = True  # W tasks: deferred in the zero-bubble steps, else right after B
    bidirectional = True
    async_sends = True
    weight_copies = 2  # each rank holds chunks of both directions (DeepSeek-V3 Sec. 3.2.1)
    chunk_grad_gap = 0.0

    def tasks(self, shape: Shape, rank: int) -> list[Task]:
        p, n = shape.stages, shape.micro_batches
        half, h = n // 2, min(rank, p - 1 - rank)
        second = int(rank >= p // 2)
        done = {("F", 0): 0, ("F", 1): 0, ("B", 0): 0, ("B", 1): 0}
        deferred: list[Task] = []
        order: list[Task] = []

        def run(kind: str, phase: int, *, zero_bubble: bool = False) -> None:
            direction = phase ^ second
            i = done[(kind, direction)]
            done[(kind, direction)] = i + 1
            micro_batch = direction * half + i
            order.append(Task(kind, micro_batch, direction))  # type: ignore[arg-type]
            if kind == "B":
                weight = Task("W", micro_batch, direction)
                (deferred if zero_bubble else order).append(weight)

        def weight() -> None:
            order.append(deferred.pop(0))

        outer = p // 2 - h - 1
        for _ in range(2 * outer):  # 1
            run("F", 0)
        for _ in range(h + 1):  # 2
            run("F", 0)
            run("F", 1)
        for _ in range(outer):  # 3
            run("B", 1, zero_bubble=True)
            weight()
            run("F", 1)
        for _ in range(half - p + h + 1):  # 4
            run("F", 0)
            run("B", 1)
            run("F", 1)
            run("B", 0)
        for _ in range(outer):  # 5
            run("B", 1)
            run("F", 1)
            run("B", 0)
        zero_bubble = False
        for i in range(h + 1):  # 6
            if i == (h + 1) // 2 and h % 2 == 1:
                zero_bubble = True
            run("B", 1, zero_bubble=zero_bubble)
            if i == (h + 1) // 2 and h % 2 == 0:
                zero_bubble = True
            run("B", 0, zero_bubble=zero_bubble)
        for _ in range(outer):  # 7
            weight()
            run("B", 0, zero_bubble=True)
        while deferred:  # 8
            weight()
        return order

    def bubble_factor(self, stages: int) -> float:
        # What the eight steps leave idle on uniform stages with F = B = W (the engine's
        # split of a backward pass): about 0.87·(p − 2) forward passes, measured once with
        # the event engine for p = 4-32 (DeepSeek's own count, (p/2 − 1)(F&B + B − 3W),
        # assumes F&B faster than F + B), against 1F1B's 3·(p − 1).
        return 0.87 * (stages - 2) / (3.0 * max(stages - 1, 1))

    def in_flight(self, shape: Shape, stage: vec.Num) -> vec.Num:
        # DeepSeek-V3 Table 2: PP + 1 micro-batches of activations on every rank
        return vec.as_float(vec.minimum(shape.micro_batches, shape.stages + 1)) + 0.0 * stage

    def problem(self, shape: Shape) -> str | None:
        if shape.chunks > 1:
            return (
                "parallel.schedule 'dualpipe' implies its two chunks per rank; "
                f"virtual_stages must be 1 (got {shape.chunks})"
            )
        if shape.stages < 2 or shape.stages % 2:
            return f"parallel.schedule 'dualpipe' needs an even pp >= 2 (got {shape.stages})"
        m = shape.micro_batches
        if vec.is_array(m):  # a batch of plans: the per-plan rule is checked by search
            return None
        if m % 2 or m < 2 * shape.stages:
            return (
                "parallel.schedule 'dualpipe' needs an even number of micro-batches, at "
                f"least 2·pp = {2 * shape.stages} (got {m})"
            )
        return None
