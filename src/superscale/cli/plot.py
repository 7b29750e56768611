"""Writing PNG charts for `--plot` options: matplotlib (the optional `plot` extra) is
imported only when a chart is asked for, headless (Agg)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from superscale.errors import SpecError


def pyplot() -> Any:
    """matplotlib.pyplot on the Agg backend, or a SpecError saying how to install it."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise SpecError("--plot needs matplotlib: pip install 'superscale[plot]'") from None
    return plt


def save(fig: Any, path: Path, *, dpi: int = 120) -> None:
    """Write `fig` to `path` and release it; an unwritable path is a SpecError."""
    plt = pyplot()
    try:
        fig.tight_layout()
        fig.savefig(path, dpi=dpi)
    except OSError as exc:
        raise SpecError(f"--plot: cannot write {path}: {exc.strerror}") from None
    finally:
        plt.close(fig)
