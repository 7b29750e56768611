"""Pick the fastest registered algorithm for a collective, as NCCL's tuner does, and price
collectives on a parallel group's placement for the training and serving models.

A `CommModel` owns one cluster's topology and caches each (collective, group layout)'s
costs, so a training step with hundreds of collectives routes each layout once. Where the
chip's profile measured a collective on as many ranks as a group that lies inside one
system, the measured curve prices that group instead (`measured.py`; the scenario's profile,
else the chip's shipped fitted one).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from superscale.collectives.base import COLLECTIVES, LinearCost, algorithms
from superscale.collectives.measured import MeasuredCost, collectives_for
from superscale.errors import SpecError
from superscale.hardware.spec import Cluster
from superscale.parallelism.plan import GroupPlacement, GroupShape
from superscale.topology.graph import IntArray, Topology, groups_of

Cost = LinearCost | MeasuredCost  # what prices one collective on one group layout
MEASURED = "measured"  # the costs-table entry of a profile's measured curve


class CommModel:
    """Collective times on one cluster; create one per simulation and reuse it."""

    def __init__(self, cluster: Cluster, *, measured: bool = True) -> None:
        """`measured=False` prices every group with the model (the component checks,
        which compare the model with the very rows a fitted profile carries)."""
        self.cluster = cluster
        self.topology = Topology(cluster=cluster)
        self._measured = collectives_for(cluster.chip) if measured else {}
        self._costs: dict[tuple[str, int, int], dict[str, Cost]] = {}
        self._tables: dict[tuple[str, bytes], tuple[np.ndarray, ...]] = {}
        self._curves: dict[tuple[str, bytes], list[tuple[int, MeasuredCost]]] = {}

    def costs(self, collective: str, size: int, stride: int) -> dict[str, Cost]:
        """Every applicable algorithm's cost for all groups of (size, stride) at once, and
        the profile's measured curve as "measured" where it covers them (`measured.py`)."""
        key = (collective, size, stride)
        if key not in self._costs:
            groups = groups_of(size, stride, self.cluster.gpus)
            table: dict[str, Cost] = {**costs_for(collective, groups, self.topology)}
            measured = self._measured.get((collective, size))
            if measured is not None and self._inside_systems(groups):
                table[MEASURED] = measured
            self._costs[key] = table
        return self._costs[key]

    @staticmethod
    def chosen(table: dict[str, Cost], nbytes: float) -> tuple[str, Cost]:
        """What prices a collective of `nbytes` from its `costs` table: the measured curve
        where there is one (the library's own choice, as it ran), else the fastest
        algorithm (as NCCL's tuner picks)."""
        if MEASURED in table:
            return MEASURED, table[MEASURED]
        name = min(table, key=lambda a: table[a].time_s(nbytes))
        return name, table[name]

    def _inside_systems(self, groups: IntArray) -> bool:
        """Whether every group's members sit in one system (where a profile measured)."""
        systems = groups // self.topology.per_system
        return bool(np.all(systems == systems[:, :1]))

    def best(
        self, collective: str, nbytes: float, size: int, stride: int, algorithm: str = "auto"
    ) -> tuple[str, float]:
        """(algorithm, seconds) of what prices it (`chosen`), or of `algorithm` if named."""
        if size <= 1:
            return "none", 0.0
        table = self.costs(collective, size, stride)
        if algorithm != "auto":
            if algorithm not in table:
                allowed = ", ".join(["auto", *sorted(table)])
                raise SpecError(
                    f"algorithm '{algorithm}' does not run {collective} on this "
                    f"group (allowed: {allowed})"
                )
            return algorithm, float(table[algorithm].time_s(nbytes))
        name, cost = self.chosen(table, nbytes)
        return name, float(cost.time_s(nbytes))

    def time_s(self, collective: str, nbytes: Any, group: GroupPlacement | GroupShape) -> Any:
        """Seconds for `collective` of nccl-tests size `nbytes` on every group like `group`.

        Size, stride and bytes may be arrays (a batch of plans): each distinct layout is
        routed once and priced exactly as for one plan.
        """
        size, stride = group.size, group.stride
        if (
            not isinstance(size, np.ndarray)
            and not isinstance(stride, np.ndarray)
            and (not isinstance(nbytes, np.ndarray))
        ):
            return self.best(collective, nbytes, size, stride)[1]
        size_a, stride_a, bytes_a = np.broadcast_arrays(
            np.asarray(size), np.asarray(stride), np.asarray(nbytes, dtype=np.float64)
        )
        layouts = getattr(group, "layouts", None)  # a batch's groups carry them
        if layouts is not None and len(layouts[1]) == size_a.size:
            pairs, inverse = layouts
        else:
            codes = size_a.ravel().astype(np.int64) * (1 << 32) + stride_a.ravel().astype(np.int64)
            pairs, inverse = np.unique(codes, return_inverse=True)
        fixed, per_byte, fill, fill_cap = self._matrices(collective, pairs)
        if fixed.shape[1] == 0:
            return np.zeros(size_a.shape)
        flat_bytes = bytes_a.ravel()
        column = flat_bytes[:, None]
        fills = np.minimum(fill[inverse] * np.sqrt(column)[:, :, None], fill_cap[inverse])
        times = fixed[inverse] + per_byte[inverse] * column + fills.sum(axis=2)
        best = times.min(axis=1)
        for layout, curve in self._measured_layouts(collective, pairs):  # where they price
            rows = inverse == layout
            best[rows] = curve.time_s(flat_bytes[rows])
        active = (size_a.ravel() > 1) & (flat_bytes != 0)
        return np.where(active, best, 0.0).reshape(size_a.shape)

    def _measured_layouts(
        self, collective: str, pairs: np.ndarray
    ) -> list[tuple[int, MeasuredCost]]:
        """(index in `pairs`, curve) of the layouts a measured curve prices (cached)."""
        if not self._measured:
            return []
        key = (collective, pairs.tobytes())
        if key not in self._curves:
            found = []
            for layout, pair in enumerate(pairs.tolist()):
                size, stride = pair >> 32, pair & 0xFFFFFFFF
                table = self.costs(collective, size, stride) if size > 1 else {}
                curve = table.get(MEASURED)
                if isinstance(curve, MeasuredCost):
                    found.append((layout, curve))
            self._curves[key] = found
        return self._curves[key]

    def _matrices(self, collective: str, pairs: np.ndarray) -> tuple[np.ndarray, ...]:
        """(fixed seconds, seconds per byte, fill seconds per √byte, fill cap seconds) of
        every algorithm (columns; +inf fixed where one does not run; the fills along a third
        axis) on each layout `size·2³² + stride` of `pairs` (rows): `LinearCost.time_s` of
        each, vectorized."""
        key = (collective, pairs.tobytes())
        if key not in self._tables:
            tables = [
                self.costs(collective, int(sz), int(st)) if sz > 1 else {}
                for sz, st in zip(
                    (pairs >> 32).tolist(), (pairs & 0xFFFFFFFF).tolist(), strict=True
                )
            ]
            width = max((len(t) for t in tables), default=0)
            depth = max((len(c.fills) for t in tables for c in t.values()), default=0)
            fixed = np.full((len(tables), width), np.inf)
            per_byte = np.zeros((len(tables), width))
            fill = np.zeros((len(tables), width, depth))
            fill_cap = np.zeros((len(tables), width, depth))
            for row, table in enumerate(tables):
                for col, cost in enumerate(table.values()):
                    if isinstance(cost, MeasuredCost):  # priced in `time_s`, not linear
                        continue
                    fixed[row, col], per_byte[row, col] = cost.fixed_s, cost.per_byte_s
                    for i, (a, b) in enumerate(cost.fills):
                        fill[row, col, i], fill_cap[row, col, i] = a, b
            self._tables[key] = (fixed, per_byte, fill, fill_cap)
        return self._tables[key]


def costs_for(collective: str, groups: IntArray, topo: Topology) -> dict[str, LinearCost]:
    """Linear costs of every registered algorithm that runs `collective` on `groups`."""
    if collective not in COLLECTIVES:
        raise SpecError(f"unknown collective '{collective}' (allowed: {', '.join(COLLECTIVES)})")
    table = {}
    for name, algo in algorithms().items():
        cost = algo.cost(collective, groups, topo)
        if cost is not None:
            table[name] = cost
    if not table:
        raise SpecError(f"no algorithm runs {collective} on groups of {groups.shape[1]}")
    return table


def collective_time_s(
    collective: str, payload_bytes: float, group: GroupPlacement, cluster: Cluster
) -> float:
    """One-off convenience: the fastest algorithm's time. Hold a CommModel to reuse routes."""
    return float(CommModel(cluster).time_s(collective, payload_bytes, group))
