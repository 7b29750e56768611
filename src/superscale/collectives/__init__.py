"""Collective communication: registered algorithms priced on the cluster's topology.

Importing the package registers the built-in algorithms (ring, tree, hierarchical, nvls,
direct, hierarchical_a2a, load_store, mesh, p2p).
"""

from superscale.collectives import (  # noqa: F401  (registration side effect)
    alltoall,
    hierarchical,
    loadstore,
    mesh,
    nvls,
    p2p,
    ring,
    tree,
)
from superscale.collectives.base import BUS_FACTOR, COLLECTIVES, LinearCost, algorithms
from superscale.collectives.tuner import CommModel, collective_time_s, costs_for

__all__ = [
    "BUS_FACTOR",
    "COLLECTIVES",
    "CommModel",
    "LinearCost",
    "algorithms",
    "collective_time_s",
    "costs_for",
]
