"""Chips, links, systems and clusters, and their catalogs."""

from superscale.hardware.spec import Chip, Cluster, Link, ScaleOut, System

__all__ = ["Chip", "Cluster", "Link", "ScaleOut", "System"]
