"""The `facility:` section of a scenario (extended by the facility issue)."""

from __future__ import annotations

from superscale.spec import Spec


class FacilitySpec(Spec):
    """Site assumptions (prices, PUE, storage); fields are added by the facility model."""
