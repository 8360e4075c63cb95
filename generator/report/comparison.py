"""The comparison page of an ablation: one table of headline metrics per variant, bars, histograms.

`generator.ablate` calls `render_comparison` with each variant's metrics (`variant_metrics`) and
prints and saves the markdown it returns.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from generator.report.page import Figure, Raw, Section, html_page, markdown
from generator.report.render import HTML, require_extra
from generator.report.tables import Table, comparison_drops, comparison_table, headline

# the per-variant bars of a comparison (headline columns; the optional ones only where some variant has them)
BAR_COLUMNS = [
    "kept rows",
    "ROUGE-L vs seed (mean)",
    "ROUGE-L vs kept (mean)",
    "distinct-2",
    "root verbs",
    "verb-object pairs",
    "output words (mean)",
    "teacher tokens / row",
    "verified (%)",
    "downstream score",
]


def render_comparison(variants: list[tuple[str, dict[str, Any]]], out_dir: Path) -> str:
    """Write `out_dir/report.html` for the variants of an ablation and return the markdown summary (the
    caller prints and saves it). Each variant is (name, dict): the dict is a metrics dict
    (`variant_metrics`), or an entry holding one under "metrics" beside "description", "changes" or
    "skipped" (a variant that could not be measured: listed with its reason, left out of the figures)."""
    require_extra()
    from generator.report import figures

    entries = list(variants)
    measured = [(name, d.get("metrics", d)) for name, d in entries if "skipped" not in d]
    names = [name for name, _ in measured]
    values = [headline(m) for _, m in measured]
    shown = [c for c in BAR_COLUMNS if any(v[c] is not None for v in values)]
    bars = figures.variant_bars(names, {c: [v[c] for v in values] for c in shown})
    histograms = {name: m["diversity"]["rouge_vs_seed_histogram"] for name, m in measured}
    about = [
        [name, str(d.get("description") or ""), _changes(d.get("changes")), str(d.get("skipped") or "")]
        for name, d in entries
    ]
    sections = [
        Section(
            "Variants",
            [comparison_table(measured), Table(["variant", "description", "changes", "skipped"], about)],
        ),
        Section("Per variant", [Figure(bars, "Headline metrics per variant.")]),
        Section(
            "ROUGE-L against the most similar seed",
            [
                Figure(
                    figures.rouge_overlay(histograms), "Share of each variant's instructions per ROUGE-L bin."
                )
            ],
        ),
        Section("Drops per filter", [comparison_drops(measured)]),
        Section("Data", [Raw("all variants (JSON)", [{"variant": name, **d} for name, d in entries])]),
    ]
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    title = "synth-instruct comparison"
    (out_dir / HTML).write_text(html_page(title, sections), encoding="utf-8")
    return markdown(title, sections)


def _changes(changes: Any) -> str:
    if not changes:
        return "-"
    if isinstance(changes, Mapping):
        return "; ".join(f"{k}: {json.dumps(v, default=str)}" for k, v in changes.items())
    return json.dumps(changes, default=str)
