"""The `serving:` section of a scenario (extended by the serving issue)."""

from __future__ import annotations

from superscale.spec import Spec


class ServingSpec(Spec):
    """What a deployment serves; fields are added by the serving model."""
