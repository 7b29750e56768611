"""The model catalog, read from `catalog/*.yaml` (one file per family)."""

from __future__ import annotations

from functools import cache
from importlib import resources

from superscale.catalog import Catalog, read_catalog_yaml
from superscale.models.spec import ModelSpec


@cache
def models() -> Catalog[ModelSpec]:
    entries = []
    for item in sorted(resources.files(__name__).iterdir(), key=lambda p: p.name):
        if item.name.endswith(".yaml"):
            entries.extend(read_catalog_yaml(__name__, item.name))
    return Catalog("model", entries, ModelSpec.model_validate)
