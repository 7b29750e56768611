"""superscale: GPU computing from the chip to the thousand-card cluster.

How long is one training step of model M with plan P on cluster C, where does the time go,
and does it fit? The public API is curated here; `__all__` is pinned by a test.
"""

from superscale.errors import InfeasiblePlan, SpecError
from superscale.scenario import Scenario, load_scenario

__all__ = ["InfeasiblePlan", "Scenario", "SpecError", "load_scenario"]
__version__ = "0.1.0"
