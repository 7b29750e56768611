"""The catalogs by the plural names `catalog` and `show` use, and the figures `show` derives
from an entry (what the CLI prints with --json and the service returns)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from superscale.catalog import Catalog
from superscale.hardware import catalog as hardware_catalog
from superscale.hardware.profile import efficiency_source
from superscale.hardware.spec import Chip, Cluster, Link, System
from superscale.models import catalog as model_catalog
from superscale.models.spec import ModelSpec

# Plural name on the command line → (singular kind, catalog loader), in lookup order.
CATALOGS: dict[str, tuple[str, Callable[[], Catalog[Any]]]] = {
    "chips": ("chip", hardware_catalog.chips),
    "links": ("link", hardware_catalog.links),
    "systems": ("system", hardware_catalog.systems),
    "clusters": ("cluster", hardware_catalog.clusters),
    "models": ("model", model_catalog.models),
}


def derived_figures(entry: Any) -> dict[str, Any]:
    """Figures computed from an entry's fields (SI units or counts), for `show`."""
    if isinstance(entry, ModelSpec):
        return {
            "params": entry.params,
            "active_params": entry.active_params,
            "params_b": round(entry.params / 1e9, 3),
            "active_params_b": round(entry.active_params / 1e9, 3),
            "moe_layers": entry.moe_layers,
        }
    if isinstance(entry, Cluster):
        return {
            "gpus": entry.gpus,
            "chip": entry.chip.name,
            "network": entry.nic.name,
            "nic_bytes_per_s_per_system": entry.nic_bytes_per_s_per_system,
        }
    if isinstance(entry, System):
        return {
            "gpus": entry.gpus,
            "domains": entry.domains,
            "scale_up_bytes_per_s": entry.scale_up_bytes_per_s,
        }
    if isinstance(entry, Chip):
        return {
            "hbm_bytes": entry.hbm_bytes,
            "hbm_bandwidth_bytes_per_s": entry.hbm_bandwidth_bytes_per_s,
            "efficiency_source": efficiency_source(entry),
        }
    if isinstance(entry, Link):
        return {"bandwidth_bytes_per_s": entry.bandwidth_bytes_per_s, "latency_s": entry.latency_s}
    return {}
