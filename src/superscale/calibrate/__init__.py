"""Calibration: measure a real device with PyTorch, and check a real training step.

`measure(device)` (bench.py) runs microbenchmarks (GEMMs by shape and precision, copies by
size, fused attention by sequence length and head size, collectives when several devices are
present) and returns an `EfficiencyProfile` (hardware/profile.py) the compute cost model
reads. `check(profile)` (check.py) trains a small GPT for a few steps on the device and puts
its measured step time and peak memory beside superscale's prediction for the same model,
batch and profile.

PyTorch is an optional extra (`pip install 'superscale[torch]'`): this package imports it only
in its submodules, so `import superscale` and the rest of the CLI stay torch-free.
"""

from __future__ import annotations

from superscale.errors import SpecError

TORCH_HINT = "pip install 'superscale[torch]' (or: pip install torch==2.13.0)"


def require_torch() -> None:
    """Raise SpecError with an install hint when PyTorch is not installed."""
    try:
        import torch  # noqa: F401
    except ImportError:
        raise SpecError(
            f"calibration needs PyTorch, which is not installed: {TORCH_HINT}"
        ) from None
