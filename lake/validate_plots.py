"""The PNG plots of `just validate`: audio, classes, vector norms and a 2-D PCA per backbone.

Each function writes one figure atomically and returns its path. Matplotlib runs on the Agg
backend (files only, no display), so this works on a headless machine.
"""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from lake.atomic import atomic_path
from lake.validate_checks import BackboneProfile, TracksProfile

MAX_BARS = 30      # classes shown per column; the rest are summed into one bar
MAX_COLOURS = 12   # legend entries per PCA panel; the rest are grey "other"


def _save(fig: plt.Figure, target: Path) -> Path:
    fig.tight_layout()
    with atomic_path(target) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
    return target


def audio(tp: TracksProfile, target: Path) -> Path:
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.6), gridspec_kw={"width_ratios": [3, 2]})
    durations = tp.durations[np.isfinite(tp.durations)]
    left.hist(durations, bins=min(50, max(5, len(durations) // 10)), color="#4c72b0", edgecolor="white")
    if len(durations):
        left.axvline(float(np.median(durations)), color="#c44e52", linestyle="--", label="median")
        left.legend()
    left.set(title=f"clip duration ({len(durations):,} clips)", xlabel="seconds", ylabel="clips")
    rates = list(tp.sample_rates.items())
    right.bar([r for r, _ in rates], [n for _, n in rates], color="#55a868")
    right.set(title="sample rate", xlabel="Hz", ylabel="clips")
    right.tick_params(axis="x", labelrotation=30)
    return _save(fig, target)


def classes(tp: TracksProfile, target: Path) -> Path | None:
    """Horizontal bars per class column (most frequent first), missing values in grey."""
    columns = [c for c in tp.counts if tp.counts[c]]
    if not columns:
        return None
    heights = [min(len(tp.counts[c]), MAX_BARS + 1) for c in columns]
    fig, axes = plt.subplots(len(columns), 1, figsize=(8, 1.2 + 0.28 * sum(heights) + 0.6 * len(columns)),
                             gridspec_kw={"height_ratios": heights}, squeeze=False)
    for ax, column in zip(axes[:, 0], columns):
        rows = tp.counts[column]
        shown, rest = rows[:MAX_BARS], rows[MAX_BARS:]
        names = ["(missing)" if r["value"] is None else str(r["value"]) for r in shown]
        values = [r["clips"] for r in shown]
        colours = ["#bbbbbb" if r["value"] is None else "#4c72b0" for r in shown]
        if rest:
            names.append(f"{len(rest)} more")
            values.append(sum(r["clips"] for r in rest))
            colours.append("#dd8452")
        ax.barh(names[::-1], values[::-1], color=colours[::-1])
        for y, v in enumerate(values[::-1]):
            ax.text(v, y, f" {v}", va="center", fontsize=8)
        ax.set_title(f"clips per {column}", loc="left", fontsize=10)
        ax.tick_params(axis="y", labelsize=8)
        ax.margins(x=0.12)
    return _save(fig, target)


def norms(bp: BackboneProfile, target: Path) -> Path:
    fig, ax = plt.subplots(figsize=(6, 3.4))
    ax.hist(bp.norms, bins=min(60, max(5, len(bp.norms) // 8)), color="#8172b3", edgecolor="white")
    ax.set(title=f"{bp.backbone} · layer {bp.layer}: L2 norm of {len(bp.norms):,} vectors",
           xlabel="norm", ylabel="vectors")
    return _save(fig, target)


def pca(bp: BackboneProfile, target: Path) -> Path | None:
    """One panel per colouring (label, culture): do the classes separate, does culture dominate?"""
    if bp.pca is None:
        return None
    columns = list(bp.pca_labels) or ["(none)"]
    fig, axes = plt.subplots(1, len(columns), figsize=(6.2 * len(columns), 5), squeeze=False)
    variance = " + ".join(f"{v:.0%}" for v in bp.pca_variance)
    for ax, column in zip(axes[0], columns):
        values = bp.pca_labels.get(column, np.full(len(bp.pca), "(none)"))
        names, counts = np.unique(values, return_counts=True)
        order = names[np.argsort(-counts, kind="stable")]
        top = list(order[:MAX_COLOURS])
        other = ~np.isin(values, top)
        if other.any():
            ax.scatter(bp.pca[other, 0], bp.pca[other, 1], s=8, c="#cccccc", label=f"other ({len(order) - len(top)})")
        cmap = plt.get_cmap("tab10" if len(top) <= 10 else "tab20")
        for i, name in enumerate(top):
            hit = values == name
            ax.scatter(bp.pca[hit, 0], bp.pca[hit, 1], s=10, color=cmap(i % cmap.N), label=str(name), alpha=0.8)
        ax.set(title=f"coloured by {column}", xlabel="PC1", ylabel="PC2")
        ax.legend(fontsize=7, markerscale=1.5, loc="best", framealpha=0.8)
    fig.suptitle(f"{bp.backbone} · layer {bp.layer}: PCA of {len(bp.pca):,} vectors (variance {variance})")
    return _save(fig, target)
