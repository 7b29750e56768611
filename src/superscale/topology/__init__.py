"""Cluster link graphs: routes between GPUs and how many flows share each link."""

from superscale.topology.graph import Hop, LinkLoads, Topology, groups_of

__all__ = ["Hop", "LinkLoads", "Topology", "groups_of"]
