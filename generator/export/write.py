"""Export a run folder: read its dataset, split it by instruction, write one format and its card.

The run is read through `generator.dataset` (the committed records of every stage), its config.json
and stats.json; nothing in the run folder is changed. The export goes to `<run>/export/<format>/`
unless told otherwise and never mixes with other files: a non-empty folder is refused, and `force`
replaces only the paths an export of that format writes.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from pydantic import BaseModel, ValidationError

from generator.config import RunConfig
from generator.dataset import dataset
from generator.export.card import ExportFacts, SplitCount, TeacherFacts, render_card
from generator.export.formats import (
    CARD,
    FORMATS,
    openai_item,
    remove_owned,
    sharegpt_item,
    write_alpaca,
    write_hf,
    write_jsonl,
)
from generator.export.splits import DEFAULT_SPLIT, SplitError, check_ratios, rows_of, split_records
from generator.records import Record
from generator.run_folder import CONFIG, STATS, read_json
from generator.teachers.embedded import EMBEDDED_NAME


class ExportError(ValueError):
    """Input the export cannot use (not a run folder, bad ratios, a non-empty folder...)."""


class ExportResult(BaseModel):
    folder: Path
    format: str
    splits: dict[str, SplitCount]


def default_out(run_dir: Path, fmt: str) -> Path:
    return run_dir / "export" / fmt


def read_config(run_dir: Path) -> RunConfig:
    if not run_dir.is_dir():
        raise ExportError(f"{run_dir}: no such folder")
    if not (run_dir / CONFIG).is_file():
        raise ExportError(f"{run_dir} is not a run folder (no {CONFIG})")
    try:
        return RunConfig.stored(read_json(run_dir / CONFIG))
    except (ValueError, ValidationError) as exc:  # JSONDecodeError is a ValueError
        raise ExportError(f"{run_dir / CONFIG}: not a run config: {exc}") from None


def teacher_facts(cfg: RunConfig, records: list[Record]) -> TeacherFacts:
    """The configured teacher, and who answered: the provenance of the rows says what really ran
    (a replaced teacher in tests, a server that serves another model than the name it was given)."""
    answered = sorted({f"{p.model} ({p.backend})" for r in records for p in r.provenance})
    configured_embedded = cfg.teacher == "vllm" and cfg.model is None
    embedded = any(a.startswith(f"{EMBEDDED_NAME} ") for a in answered) if answered else configured_embedded
    return TeacherFacts(
        backend=cfg.teacher,
        model=EMBEDDED_NAME if configured_embedded else str(cfg.model),
        embedded=embedded,
        base_url=cfg.base_url,
        answered_by=answered,
    )


def seeds_sha256(path: Path | None) -> str | None:
    if path is None:  # a seedless run (the magpie profile)
        return None
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:  # moved since the run: the card still names the file
        return None


def check_out(out: Path, run_dir: Path, fmt: str, force: bool) -> None:
    run, target = run_dir.resolve(), out.resolve()
    if target == run or target in run.parents:
        raise ExportError(f"--out {out} is the run folder or a folder above it: choose a folder of its own")
    if target.exists() and not target.is_dir():
        raise ExportError(f"--out {out} is a file, not a folder")
    if target.is_dir() and any(target.iterdir()):
        if not force:
            raise ExportError(f"{out} is not empty: pass --force to replace an earlier export there")
        remove_owned(target, fmt)


def export_run(
    run_dir: Path,
    fmt: str,
    out: Path | None = None,
    ratios: tuple[float, float, float] = DEFAULT_SPLIT,
    seed: int = 42,
    system: str | None = None,
    license: str = "other",
    force: bool = False,
) -> ExportResult:
    """Write `fmt` (one of FORMATS) with its card; raise ExportError on input it cannot use."""
    if fmt not in FORMATS:
        raise ExportError(f"unknown format {fmt!r}; known: {', '.join(FORMATS)}")
    if system is not None and fmt != "openai-chat":
        raise ExportError("--system applies to --format openai-chat only")
    if not license.strip():
        raise ExportError("--license is empty")
    try:
        ratios = check_ratios(ratios)
    except SplitError as exc:
        raise ExportError(str(exc)) from None
    cfg = read_config(run_dir)
    stats = read_json(run_dir / STATS) if (run_dir / STATS).is_file() else {}
    ds = dataset(run_dir)
    records = ds.records()
    parts = {name: recs for name, recs in split_records(records, ratios, seed).items() if recs}
    if not parts:
        raise ExportError(f"{run_dir}: the dataset has no rows to export yet")
    out = out or default_out(run_dir, fmt)
    check_out(out, run_dir, fmt, force)
    out.mkdir(parents=True, exist_ok=True)

    counts = {
        n: SplitCount(instructions=len(rs), rows=sum(len(r.instances) for r in rs)) for n, rs in parts.items()
    }
    facts = ExportFacts(
        format=fmt,
        run_name=cfg.run_name or run_dir.name,
        seeds=str(cfg.seeds) if cfg.seeds is not None else None,
        seeds_sha256=seeds_sha256(cfg.seeds),
        seed=cfg.seed,
        teacher=teacher_facts(cfg, records),
        profile=cfg.profile,
        domain=cfg.domain,
        verify=cfg.verify,
        evolve_rounds=cfg.evolve_rounds,
        filters=stats.get("filters", {}),
        ratios=ratios,
        split_seed=seed,
        splits=counts,
        stages=ds.sources(),
        license=license,
        system=system,
    )
    rows = {name: rows_of(recs) for name, recs in parts.items()}
    if fmt == "alpaca":
        write_alpaca(out, rows)
    elif fmt == "sharegpt":
        write_jsonl(out, rows, sharegpt_item)
    elif fmt == "openai-chat":
        write_jsonl(out, rows, lambda row: openai_item(row, system))
    else:
        write_hf(out, parts, license, description=f"{facts.run_name}: grown by synth-instruct")
    (out / CARD).write_text(render_card(facts), "utf-8")
    return ExportResult(folder=out, format=fmt, splits=counts)
