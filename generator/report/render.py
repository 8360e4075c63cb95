"""The report of one run folder: read it, compute the metrics, draw the figures, write the files.

`render_run(folder)` writes `report.html`, `report.md` and `report.json` and returns the markdown.
`variant_metrics` and `run_metrics` are the metrics with the root-verb parse, for the ablation runner.
Heavy imports (matplotlib, spaCy) happen inside the functions, after `require_extra()` has checked
that the `report` extra is installed, so importing the package is cheap and a missing extra is one
clear message.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm import tqdm

from generator.config import RunConfig
from generator.dataset import dataset
from generator.records import Record, SeedTask
from generator.report.metrics import Measured, Seeds, measure, metrics
from generator.report.page import Figure, Raw, Section, html_page, markdown
from generator.report.tables import (
    Table,
    audit_table,
    distributions_table,
    drops_table,
    evolve_table,
    summary_table,
    verification_table,
)
from generator.report.verbs import INSTALL_HINT, MODEL, PACKAGE
from generator.run_folder import CONFIG, read_json
from generator.seeds import SeedFileError, load_seeds

log = logging.getLogger(__name__)

HTML, MARKDOWN, JSON = "report.html", "report.md", "report.json"


class ReportExtraMissing(ImportError):
    """matplotlib, spaCy or the English model is missing: the `report` extra is not installed."""


def require_extra() -> None:
    needed = (("matplotlib", "matplotlib"), ("spacy", "spacy"), (MODEL, PACKAGE))
    missing = [package for module, package in needed if importlib.util.find_spec(module) is None]
    if missing:
        raise ReportExtraMissing(
            f"the report needs {', '.join(missing)}: install the extra with {INSTALL_HINT}"
        )


# -- reading a run -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class RunData:
    folder: Path
    config: RunConfig
    records: list[Record]
    seeds: list[SeedTask]
    stats: dict[str, Any]
    public: bool = False  # a page served to a client: files by their names, never a server path


def load_run(folder: str | Path) -> RunData:
    """A run folder's dataset records (`generator.dataset`), its seeds and stats.json."""
    folder = Path(folder)
    config = RunConfig.stored(read_json(folder / CONFIG))
    stats_path = folder / "stats.json"
    stats = read_json(stats_path) if stats_path.exists() else {}
    try:
        seeds = load_seeds(_seed_file(config.seeds, folder))
    except SeedFileError as exc:
        log.warning("no seed-based metrics: %s", exc)
        seeds = []
    return RunData(folder, config, dataset(folder).records(), seeds, stats)


def _seed_file(path: Path | None, folder: Path) -> Path | None:
    """The run's seed file: a relative path is relative to where the run started, which is here or,
    when the report runs elsewhere, most likely a folder above the run folder (out/<run>)."""
    if path is None or path.is_absolute() or path.exists():
        return path
    found = (base / path for base in folder.resolve().parents)
    return next((p for p in found if p.is_file()), path)


def variant_metrics(
    records: Sequence[Record],
    seeds: Seeds,
    stats: Mapping[str, Any],
    downstream: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """`metrics.metrics` with the instructions parsed for root verbs (needs the extra)."""
    return metrics(records, seeds, stats, measured=_measure(records, seeds), downstream=downstream)


def run_metrics(folder: str | Path, downstream: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The metrics of a run folder, as `variant_metrics` computes them."""
    run = load_run(folder)
    return variant_metrics(run.records, run.seeds, run.stats, downstream)


def _measure(records: Sequence[Record], seeds: Seeds) -> Measured:
    require_extra()
    from generator.report.verbs import root_verb_objects

    return measure(records, seeds, root_verb_objects([r.instruction for r in records]))


# -- one run -------------------------------------------------------------------------------------------


def _run_section(run: RunData) -> Section:
    cfg = run.config

    def shown(path: Path) -> str:
        return path.name if run.public else str(path)

    teacher = f"{cfg.teacher} ({cfg.model or 'embedded SmolLM2-135M-Instruct'})"
    rows = [
        ["folder", shown(run.folder)],
        ["profile", cfg.profile],
        ["teacher", teacher],
        *[
            [
                f"teacher {name}",
                f"{spec.teacher} ({spec.model}): {', '.join(r for r, n in cfg.route.items() if n == name)}",
            ]
            for name, spec in cfg.teachers.items()
            if name in cfg.route.values()
        ],
        ["seeds", f"{shown(cfg.seeds)} ({len(run.seeds)} tasks)" if cfg.seeds else "none (seedless: magpie)"],
        ["personas", shown(cfg.personas) if cfg.personas else "-"],
        ["target", str(cfg.target)],
        ["evolution rounds", str(cfg.evolve_rounds)],
        ["domain", cfg.domain or "-"],
        ["run seed", str(cfg.seed)],
    ]
    parts = ", ".join(
        f"{p['stage']} {p['instructions']} instr. / {p['rows']} rows" for p in run.stats.get("dataset", [])
    )
    return Section(
        "Run", [Table(["setting", "value"], rows), *([f"Dataset parts: {parts}."] if parts else [])]
    )


def draw_run_figures(run: RunData, m: Mapping[str, Any], measured: Measured) -> dict[str, Figure]:
    """Every figure of a run's page by name, drawn from `measured` (the values `m` summarises)."""
    from generator.report import figures
    from generator.report.verbs import top_verb_objects

    kept = measured.rouge_vs_kept if len(run.records) > 1 else []
    drawings: dict[str, tuple[Callable[[], bytes], str]] = {
        "funnel": (lambda: figures.funnel(m["drops"]), "Items in and kept at each filter."),
        "rouge_seed": (
            lambda: figures.rouge_histogram(
                measured.rouge_vs_seed, "ROUGE-L against the most similar seed", "ROUGE-L F"
            ),
            "ROUGE-L of each instruction against its most similar seed (Self-Instruct, Figure 3).",
        ),
        "rouge_kept": (
            lambda: figures.rouge_histogram(
                kept, "ROUGE-L against the most similar other kept instruction", "ROUGE-L F"
            ),
            "ROUGE-L of each instruction against its nearest neighbour in the kept set.",
        ),
        "verbs": (
            lambda: figures.verb_sunburst(top_verb_objects(measured.parses or [])),
            "The 20 most common root verbs (inner ring) and their 4 most common direct objects "
            "(outer ring) (Self-Instruct, Figure 2).",
        ),
        "lengths": (
            lambda: figures.lengths(measured.instruction_words, measured.input_words, measured.output_words),
            "Words per instruction, input and output.",
        ),
    }
    if m["evolve"]:
        drawings["evolve"] = (
            lambda: figures.evolve_scores({rnd: r["counts"] for rnd, r in m["evolve"].items()}),
            "Complexity and quality scores (1-6) per round.",
        )
    bar = tqdm(drawings.items(), desc="figures", unit="figure", delay=1.0, leave=False)
    return {name: Figure(draw(), caption) for name, (draw, caption) in bar}


def run_sections(
    run: RunData, m: Mapping[str, Any], measured: Measured, audit: Mapping[str, Any] | None
) -> list[Section]:
    """The sections of a run's page."""
    figs = draw_run_figures(run, m, measured)
    parses = measured.parses or []
    found = sum(1 for v, _ in parses if v is not None)
    sections = [
        _run_section(run),
        Section("Summary", [summary_table(m)]),
        Section("Filters", [figs["funnel"], drops_table(m)]),
        Section(
            "Diversity",
            [
                figs["rouge_seed"],
                figs["rouge_kept"],
                figs["verbs"],
                f"{found} of {len(parses)} instructions have a root verb (spaCy, {MODEL}).",
                distributions_table(m),
            ],
        ),
        Section("Lengths", [figs["lengths"]]),
    ]
    verification = verification_table(m)
    if verification is not None:
        sections.append(Section("Verification", [verification]))
    evolve = evolve_table(m)
    if evolve is not None:
        sections.append(Section("Evolution", [figs["evolve"], evolve]))
    sections.append(_audit_section(audit))
    sections.append(Section("Data", [Raw("all metrics (JSON)", m)]))
    return sections


def _audit_section(audit: Mapping[str, Any] | None) -> Section:
    if audit is None:
        return Section(
            "Audit",
            ["Not run: `python -m generator.report RUN_DIR --audit 200` grades a sample with the teacher."],
        )
    intro = (
        f"A seeded sample of {audit['sample']} rows (seed {audit['seed']}) graded by the teacher "
        f"{audit.get('teacher', '')} as judge with the Self-Instruct paper's three questions; "
        f"{audit['unreadable']} answers could not be read in full."
    )
    return Section("Audit", [intro, audit_table(audit)])


def render_run(
    folder: str | Path,
    out: str | Path | None = None,
    audit: Mapping[str, Any] | None = None,
    public: bool = False,
) -> str:
    """Write the report of a run folder: `out` (default `folder/report.html`), `folder/report.md` (returned)
    and `folder/report.json` (the metrics, and the audit when given). `public`: for a client of the
    service, files are shown by name, not by their paths on the server."""
    run = dataclasses.replace(load_run(folder), public=public)
    measured = _measure(run.records, run.seeds)
    m = metrics(run.records, run.seeds, run.stats, measured=measured)
    title = f"synth-instruct report: {run.config.run_name or run.folder.name}"
    data = {"metrics": m, "audit": dict(audit) if audit else None}
    sections = run_sections(run, m, measured, audit)
    out_html = Path(out) if out is not None else run.folder / HTML
    out_html.parent.mkdir(parents=True, exist_ok=True)
    out_html.write_text(html_page(title, sections), encoding="utf-8")
    text = markdown(title, sections)
    (run.folder / MARKDOWN).write_text(text, encoding="utf-8")
    (run.folder / JSON).write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return text
