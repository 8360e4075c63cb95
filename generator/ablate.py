"""What each filter does to the data: one run, many variants, one table (`python -m generator.ablate`).

    python -m generator.ablate --config ablations/filters.yaml --out DIR --replay out/<run>   # seconds
    python -m generator.ablate --config ablations/filters.yaml --out DIR [teacher flags]      # full

*Replay* re-filters the run's recorded candidate stream with each variant's filters (`generator/replay.py`):
no teacher call, exact for the filters it can judge; a variant that changes what the teacher is asked
(evolution, profile, seeds) is listed as needing full mode. *Full* generates again per variant into
DIR/runs/<variant>, all on one teacher and one request cache, so the requests variants share are paid
once (each variant's `shared_requests` says how many it did not pay for).

DIR gets `ablation.json` (one entry per variant: what it changes and its metrics), `ablation.md` (the
table, also printed) and `report.html` (the table and per-variant bars, `generator.report`).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any

from tqdm import tqdm

from generator.candidates import NoCandidates
from generator.config import ConfigError, RunConfig, load_config
from generator.dataset import dataset
from generator.errors import RayUnavailable
from generator.records import Record, SeedTask
from generator.replay import replay
from generator.report.render import ReportExtraMissing
from generator.run_folder import CONFIG, STATS, read_json, write_json_atomic
from generator.seeds import SeedFileError, load_seeds
from generator.variants import (
    AblationFile,
    NotInBase,
    Variant,
    apply,
    changes,
    load_ablations,
    why_not_replayable,
)

log = logging.getLogger("synth_instruct")


def replay_all(run_dir: Path, ablations: AblationFile) -> list[dict[str, Any]]:
    """Each variant's metrics on the run recorded in `run_dir` (no teacher)."""
    base = RunConfig.model_validate(read_json(run_dir / CONFIG)).resolved()
    run_stats = read_json(run_dir / STATS) if (run_dir / STATS).exists() else {}
    seeds = load_seeds(base.seeds)
    results = []
    for variant in tqdm(ablations.variants, desc="replay", unit="variant"):
        try:
            cfg = apply(variant, base)
        except NotInBase as exc:  # the file's variants are for many profiles; this run has other filters
            results.append({"name": variant.name, "description": variant.description, "skipped": str(exc)})
            continue
        entry = _entry(variant, cfg, base)
        why = why_not_replayable(cfg, base)
        if why is not None:
            entry["skipped"] = why
            results.append(entry)
            continue
        replayed = replay(run_dir, cfg)
        stats = {
            "filters": replayed.filters,
            "counts": dict(replayed.counts),
            # what the run paid for its candidates: every variant re-judges the same ones
            "teacher": run_stats.get("teacher", {}),
            "cost_estimate_usd": run_stats.get("cost_estimate_usd", 0.0),
            "domain": run_stats.get("domain"),
        }
        entry["metrics"] = describe(replayed.records, seeds, stats)
        results.append(entry)
    return results


def full_all(base: RunConfig, ablations: AblationFile, out: Path) -> list[dict[str, Any]]:
    """Generate again per variant, on one teacher and one request cache."""
    from generator.ray_runtime import ray_runtime
    from generator.run import run
    from generator.worker_pool import start_workers, teacher_settings

    seeds = load_seeds(base.seeds)
    if not base.cache:
        log.warning("the request cache is off: variants will share no request")
    results = []
    with ray_runtime(base.ray_address):
        pool = start_workers(teacher_settings(base))
        try:
            for variant in tqdm(ablations.variants, desc="variants", unit="variant"):
                cfg = apply(variant, base)
                folder = out / "runs" / variant.name
                cfg = cfg.model_copy(update={"out": folder, "run_name": variant.name})
                summary = run(cfg, workers=pool)
                entry = _entry(variant, cfg, base)
                entry["run"] = str(folder)
                entry["metrics"] = describe(dataset(folder).records(), seeds, summary, downstream(folder))
                entry["metrics"]["shared_requests"] = summary["teacher"]["cache_hits"]
                results.append(entry)
        finally:
            pool.stop()
    return results


def _entry(variant: Variant, cfg: RunConfig, base: RunConfig) -> dict[str, Any]:
    return {"name": variant.name, "description": variant.description, "changes": changes(cfg, base)}


def describe(
    records: list[Record],
    seeds: list[SeedTask],
    stats: dict[str, Any],
    downstream: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A variant's metrics (`generator.report.variant_metrics`)."""
    from generator.report import variant_metrics

    return variant_metrics(records, seeds, stats, downstream)


def downstream(folder: Path) -> dict[str, Any] | None:
    """The score of a model tuned on a variant's data, if one was (`python -m generator.finetune --data
    <variant run>` writes `finetune/eval.json`; rerunning the ablation then reads it: the runs resume)."""
    path = folder / "finetune" / "eval.json"
    if not path.exists():
        return None
    result = read_json(path)
    keys = ("score", "score_kind")
    return {**{k: result.get(k) for k in keys}, "base": result.get("base"), "tuned": result.get("tuned")}


def write_outputs(out: Path, mode: str, source: str, results: list[dict[str, Any]]) -> str:
    """ablation.json, ablation.md and report.html in `out`; returns the markdown."""
    from generator.report import render_comparison

    out.mkdir(parents=True, exist_ok=True)
    write_json_atomic(out / "ablation.json", {"mode": mode, "source": source, "variants": results})
    markdown = render_comparison([(r["name"], r) for r in results], out)
    (out / "ablation.md").write_text(markdown, "utf-8")
    return markdown


def build_parser() -> argparse.ArgumentParser:
    from generator.run import add_teacher_flags

    p = argparse.ArgumentParser(
        prog="python -m generator.ablate",
        description="Compare variants of one run's filters (replay a recorded run, or generate again).",
        epilog="Writes DIR/ablation.json, DIR/ablation.md and DIR/report.html. Exit codes: 0 done, 2 bad input.",
    )
    p.add_argument("--config", type=Path, required=True, help="the variants (ablations/filters.yaml)")
    p.add_argument("--out", type=Path, required=True, help="where the comparison goes")
    p.add_argument(
        "--replay",
        type=Path,
        default=None,
        metavar="RUN",
        help="re-filter this run folder (no teacher calls)",
    )
    add_teacher_flags(p)
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(message)s")
    try:
        ablations = load_ablations(args.config)
        if args.replay is not None:
            if not (args.replay / CONFIG).exists():
                raise ConfigError(f"{args.replay}: not a run folder (no {CONFIG})")
            results = replay_all(args.replay, ablations)
            markdown = write_outputs(args.out, "replay", str(args.replay), results)
        else:
            flags = {
                k: v
                for k, v in vars(args).items()
                if k not in {"config", "out", "replay", "verbose"} and v is not None  # unset: the file's
            }
            base = load_config(None, {**ablations.base, **flags}).resolved()
            results = full_all(base, ablations, args.out)
            markdown = write_outputs(args.out, "full", str(args.config), results)
    except (ConfigError, SeedFileError, NoCandidates, ReportExtraMissing, RayUnavailable) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(markdown)
    print(f"wrote {args.out}/ablation.json, ablation.md and report.html")
    return 0


if __name__ == "__main__":
    sys.exit(main())
