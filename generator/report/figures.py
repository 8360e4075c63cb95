"""The report's figures, each a function that returns PNG bytes.

matplotlib's object API (`Figure`, no pyplot): no global state, no display, nothing shared between
threads; a `Figure` renders with the Agg canvas. Every figure has a title and labelled axes, and a
figure without data says so in its middle rather than going missing, so the page always has it.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

DPI = 100
_KEPT, _DROPPED, _GREY = "#4c72b0", "#dd8452", "#d9d9d9"


def png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, bbox_inches="tight")
    return buf.getvalue()


def _no_data(ax: Axes, what: str = "no data") -> None:
    ax.text(0.5, 0.5, what, ha="center", va="center", transform=ax.transAxes, color="grey")
    ax.set_xticks([])
    ax.set_yticks([])


def funnel(drops: Mapping[str, Mapping[str, Any]]) -> bytes:
    """Items in and kept at each filter, in the order the filters ran (`metrics.filter_drops`)."""
    labels = list(drops)
    fig = Figure(figsize=(8, 1.5 + 0.35 * max(len(labels), 2)))
    ax = fig.subplots()
    ax.set_title("Filter funnel: items in and kept per filter")
    if not labels:
        _no_data(ax, "no filter ran")
        return png(fig)
    y = np.arange(len(labels))
    total = [drops[k]["total"] for k in labels]
    kept = [drops[k]["kept"] for k in labels]
    ax.barh(y, total, color=_DROPPED, label="dropped")
    ax.barh(y, kept, color=_KEPT, label="kept")
    for i, label in enumerate(labels):
        if drops[label]["dropped"]:
            ax.text(total[i], i, f" -{drops[label]['dropped']}", va="center", fontsize=8)
    ax.set_yticks(y, labels, fontsize=8)
    ax.invert_yaxis()  # the first filter on top
    ax.set_xlabel("items")
    ax.legend(loc="lower right", fontsize=8)
    return png(fig)


def rouge_histogram(scores: Sequence[float], title: str, xlabel: str) -> bytes:
    """Histogram of ROUGE-L scores in bins of 0.05 (the Self-Instruct paper's Figure 3)."""
    fig = Figure(figsize=(7, 4))
    ax = fig.subplots()
    ax.set_title(title)
    if not scores:
        _no_data(ax)
        return png(fig)
    ax.hist(scores, bins=20, range=(0.0, 1.0), color=_KEPT, edgecolor="white")
    ax.axvline(0.7, color="grey", linestyle="--", linewidth=1, label="dedup threshold 0.7")
    ax.set_xlim(0, 1)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("# instructions")
    ax.legend(fontsize=8)
    return png(fig)


def verb_sunburst(top: Sequence[tuple[str, int, Sequence[tuple[str, int]]]]) -> bytes:
    """Inner ring the top root verbs, outer ring each verb's top direct objects (the paper's Figure 2).

    The outer ring is aligned with the inner: each verb's wedge spans its count, its objects take their
    share of it and the rest (other or no object) is left blank.
    """
    fig = Figure(figsize=(8, 8))
    ax = fig.subplots()
    ax.set_title("Root verbs (inner) and their direct objects (outer)")
    if not top:
        _no_data(ax, "no root verb found")
        return png(fig)
    colours = _palette(len(top))  # one hue per verb
    inner = [n for _, n, _ in top]
    outer, outer_labels, outer_colours = [], [], []
    for (_, n, objects), colour in zip(top, colours, strict=True):
        for obj, k in objects:
            outer.append(k)
            outer_labels.append(obj)
            outer_colours.append((*colour[:3], 0.55))
        rest = n - sum(k for _, k in objects)
        if rest:
            outer.append(rest)
            outer_labels.append("")
            outer_colours.append((1, 1, 1, 0))
    ring = {"width": 0.35, "edgecolor": "white", "linewidth": 0.8}
    ax.pie(
        outer,
        radius=1.0,
        colors=outer_colours,
        labels=outer_labels,
        labeldistance=0.83,
        rotatelabels=True,
        startangle=90,
        counterclock=False,
        wedgeprops=ring,
        textprops={"fontsize": 7, "va": "center", "ha": "center"},
    )
    ax.pie(
        inner,
        radius=0.65,
        colors=colours,
        labels=[v for v, _, _ in top],
        labeldistance=0.72,
        rotatelabels=True,
        startangle=90,
        counterclock=False,
        wedgeprops=ring,
        textprops={"fontsize": 8, "va": "center", "ha": "center"},
    )
    ax.set(aspect="equal")
    return png(fig)


def _palette(n: int) -> list[tuple[float, float, float, float]]:
    from matplotlib import colormaps

    cmap = colormaps["tab20"]
    return [cmap(i % 20) for i in range(n)]


def lengths(instruction: Sequence[int], inputs: Sequence[int], outputs: Sequence[int]) -> bytes:
    """Word-count histograms of instructions, inputs and outputs, each cut at its 99th percentile."""
    fig = Figure(figsize=(12, 3.8))
    axes = fig.subplots(1, 3)
    fig.suptitle("Lengths (words)")
    for ax, values, name in zip(
        axes, (instruction, inputs, outputs), ("instruction", "input", "output"), strict=True
    ):
        ax.set_title(name)
        if not values:
            _no_data(ax)
            continue
        top = max(1.0, float(np.percentile(values, 99)))
        # one bar per word count while that stays readable, else 30 equal bins
        bins: Any = np.arange(-0.5, top + 1.5) if top <= 60 else 30
        ax.hist(np.minimum(values, top), bins=bins, color=_KEPT, edgecolor="white")
        ax.set_xlabel("words" + (" (cut at p99)" if top < max(values) else ""))
        ax.set_ylabel("# items")
    fig.tight_layout()
    return png(fig)


def evolve_scores(counts: Mapping[str, Mapping[str, Mapping[int, int] | Mapping[str, int]]]) -> bytes:
    """Complexity and quality scores (1-6) per evolution round, as stacked shares of the round's items.

    `counts`: {round: {"complexity"|"quality": {score: n}}} (`metrics.score_counts`; the keys may be
    strings after a trip through JSON).
    """
    from matplotlib import colormaps

    fig = Figure(figsize=(11, 4))
    axes = fig.subplots(1, 2)
    fig.suptitle("Judge scores of evolved items per round")
    rounds = sorted(counts, key=int)
    cmap = colormaps["viridis"]
    for ax, kind in zip(axes, ("complexity", "quality"), strict=True):
        ax.set_title(kind)
        per_round = [{int(s): n for s, n in counts[r].get(kind, {}).items()} for r in rounds]
        totals = [sum(c.values()) for c in per_round]
        if not any(totals):
            _no_data(ax)
            continue
        bottom = np.zeros(len(rounds))
        for score in range(1, 7):
            share = np.array(
                [c.get(score, 0) / t if t else 0.0 for c, t in zip(per_round, totals, strict=True)]
            )
            ax.bar(
                np.arange(len(rounds)), share, bottom=bottom, color=cmap((score - 1) / 5), label=str(score)
            )
            bottom += share
        ax.set_xticks(np.arange(len(rounds)), [str(r) for r in rounds])
        ax.set_xlabel("round")
        ax.set_ylabel("share of items")
        ax.set_ylim(0, 1)
        ax.legend(title="score", fontsize=7, title_fontsize=7, loc="upper left", bbox_to_anchor=(1, 1))
    fig.tight_layout()
    return png(fig)


def variant_bars(names: Sequence[str], columns: Mapping[str, Sequence[float | None]]) -> bytes:
    """One small bar chart per metric, one bar per variant (a missing value is no bar)."""
    items = list(columns.items())
    cols = 3
    rows = max(1, -(-len(items) // cols))
    fig = Figure(figsize=(4.2 * cols, 3.2 * rows))
    axes = np.atleast_1d(fig.subplots(rows, cols)).ravel()
    fig.suptitle("Per variant")
    x = np.arange(len(names))
    colours = _palette(len(names))
    for ax, (metric, values) in zip(axes, items, strict=False):
        ax.set_title(metric, fontsize=9)
        heights = [0.0 if v is None else float(v) for v in values]
        bars = ax.bar(x, heights, color=colours)
        ax.bar_label(bars, labels=["" if v is None else f"{v:.3g}" for v in values], fontsize=7)
        ax.set_xticks(x, names, rotation=30, ha="right", fontsize=8)
        for i, v in enumerate(values):
            if v is None:
                ax.text(i, 0, "n/a", ha="center", va="bottom", fontsize=7, color="grey")
    for ax in axes[len(items) :]:
        ax.set_visible(False)
    fig.tight_layout()
    return png(fig)


def rouge_overlay(histograms: Mapping[str, Sequence[int]]) -> bytes:
    """Several variants' ROUGE-L histograms (counts in equal bins over [0, 1]) as shares, one line each."""
    fig = Figure(figsize=(8, 4))
    ax = fig.subplots()
    ax.set_title("ROUGE-L against the most similar seed, per variant")
    drawn = False
    for (name, counts), colour in zip(histograms.items(), _palette(len(histograms)), strict=True):
        total = sum(counts)
        if not total:
            continue
        edges = np.linspace(0.0, 1.0, len(counts) + 1)
        ax.stairs(np.asarray(counts) / total, edges, label=name, color=colour, linewidth=1.5)
        drawn = True
    if not drawn:
        _no_data(ax)
        return png(fig)
    ax.set_xlim(0, 1)
    ax.set_xlabel("ROUGE-L F")
    ax.set_ylabel("share of instructions")
    ax.legend(fontsize=8)
    return png(fig)
