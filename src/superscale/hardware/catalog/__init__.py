"""The hardware catalogs: chips, links, systems and clusters, read from `catalog/*.yaml`.

Adding hardware means adding a YAML entry with its `source`; no Python changes.
"""

from __future__ import annotations

from functools import cache

from superscale.catalog import Catalog, read_catalog_yaml
from superscale.hardware.spec import Chip, Cluster, Link, System

_PKG = __name__


@cache
def links() -> Catalog[Link]:
    return Catalog("link", read_catalog_yaml(_PKG, "links.yaml"), Link.model_validate)


@cache
def chips() -> Catalog[Chip]:
    return Catalog("chip", read_catalog_yaml(_PKG, "chips.yaml"), Chip.model_validate)


@cache
def systems() -> Catalog[System]:
    return Catalog("system", read_catalog_yaml(_PKG, "systems.yaml"), System.model_validate)


@cache
def clusters() -> Catalog[Cluster]:
    return Catalog("cluster", read_catalog_yaml(_PKG, "clusters.yaml"), Cluster.model_validate)
