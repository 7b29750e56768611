"""Interleaved 1F1B (Narayanan et al. 2021, Sec. 2.2.2; Megatron-LM's order).

Each rank holds v model chunks; micro-batches advance through the chunks in groups of p,
so the bubble shrinks to (p−1)/v of a chunk pass: (p−1)/(v·m + p−1) of the step.
"""

from __future__ import annotations

from superscale.simulate.schedules.base import Shape, Task, register


@register("interleaved")
class Interleaved:
    """Megatron-LM's interleaved schedule over v chunks per rank."""

    name = "interleaved"
    split_backward = False
    bidirectional = False

    def tasks(self, shape: Shape, rank: int) -> list[Task]:
        p, m, v = shape.stages, shape.micro_batches, shape.chunks
        total = m * v

        def forward(k: int) -> Task:
            group, offset = divmod(k, p * v)
            chunk = offset // p
            return Task("F", group * p + offset % p, chunk)

        def backward(k: int) -> Task:
            group, offset = divmod(k, p * v)
            chunk = v - 1 - offset // p
            return Task("B", group * p + offset % p, chunk)

        warmup = min(total, (p - rank - 1) * 2 + (v - 1) * p)
        order = [forward(k) for k in range(warmup)]
        f, b = warmup, 0
        while b < total:
            if f < total:
                order.append(forward(f))
                f += 1
            order.append(backward(b))
            b += 1
        return order
