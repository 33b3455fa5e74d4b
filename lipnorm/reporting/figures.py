"""What the report figures share: a headless pyplot, accuracy-vs-severity panels, atomic saving."""

from __future__ import annotations

from typing import Iterable, Optional

from lipnorm.atomic import atomic_path


def pyplot():
    """matplotlib.pyplot on the Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def severity_curve(ax, points: Iterable[tuple[float, float]], clean: Optional[float], label: str) -> None:
    """Accuracy (fractions, plotted in %) against severity, starting from the clean accuracy at 0."""
    pts = sorted(points)
    if clean is not None:
        pts = [(0.0, clean)] + pts
    ax.plot([p[0] for p in pts], [100 * p[1] for p in pts], marker="o", label=label)


def accuracy_axes(ax, title: str) -> None:
    ax.set_title(title)
    ax.set_xlabel("severity")
    ax.set_ylabel("accuracy (%)")
    ax.set_ylim(0, 100)
    ax.grid(alpha=0.3)


def save(fig, path: str) -> None:
    """Lays out, writes `path` atomically as PNG and frees the figure."""
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    pyplot().close(fig)
