"""`python -m generator.report RUN_DIR [--out FILE] [--audit N] [--audit-seed S] [teacher flags]`

Writes RUN_DIR/report.html (or --out), RUN_DIR/report.md (also printed) and RUN_DIR/report.json.
`--audit N` grades a seeded sample of N rows with the run's teacher (or the one the teacher flags
name) as judge; it is off by default, since it starts the teacher and, with the embedded 135M model,
measures nothing but noise. Exit codes: 0 done, 1 the teacher failed, 2 bad input or the `report`
extra missing.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any

from generator.config import ConfigError, RunConfig
from generator.errors import RayUnavailable, TeacherUnavailable
from generator.report.render import HTML, ReportExtraMissing, render_run, require_extra
from generator.run import add_teacher_flags
from generator.run_folder import CONFIG, read_json
from generator.workers import TeacherFactory

log = logging.getLogger("synth_instruct.report")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m generator.report",
        description="Write a self-contained HTML report of a run folder: metrics, figures and, "
        "with --audit, a teacher-graded sample.",
        epilog="Exit codes: 0 done, 1 the teacher failed, 2 bad input or the report extra missing.",
    )
    p.add_argument("run_dir", type=Path, metavar="RUN_DIR", help="a run folder (out/<run>)")
    p.add_argument("--out", type=Path, default=None, help=f"the HTML file (default RUN_DIR/{HTML})")
    p.add_argument(
        "--audit",
        type=int,
        default=0,
        metavar="N",
        help="grade a seeded sample of N rows with the teacher as judge (off by default; starts the teacher)",
    )
    p.add_argument("--audit-seed", type=int, default=None, help="the sample's seed (default: the run's seed)")
    add_teacher_flags(p)
    return p


def _teacher_flags() -> set[str]:
    p = argparse.ArgumentParser(add_help=False)
    add_teacher_flags(p)
    return {a.dest for a in p._actions}


def audit_config(run_dir: Path, args: argparse.Namespace) -> RunConfig:
    """The run's config with the teacher flags given on the command line laid over it."""
    saved = read_json(run_dir / CONFIG)
    flags = {k: v for k, v in vars(args).items() if k in _teacher_flags() and v is not None}
    try:
        return RunConfig.model_validate({**saved, **flags})
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


def audit(
    run_dir: Path,
    n: int,
    seed: int | None,
    cfg: RunConfig,
    teacher: TeacherFactory | None = None,
    api: str | None = None,
) -> dict[str, Any]:
    """Start the teacher's workers, grade the sample, stop them. The judge prompt goes to `api`
    (an explicit --api), else to the endpoint the run's own judges used (`evolve_api`)."""
    from generator.dataset import dataset
    from generator.ray_runtime import ray_runtime
    from generator.report.audit import run_audit
    from generator.worker_pool import start_workers, teacher_settings

    if cfg.teacher == "vllm" and cfg.model is None and teacher is None:
        log.warning("auditing with the embedded 135M teacher: its verdicts are noise, not a measurement")
    settings = teacher_settings(cfg)
    rows = dataset(run_dir).rows()
    with ray_runtime(settings.ray_address):
        pool = start_workers(settings, teacher)
        try:
            backend, model = pool.identity_for("audit")  # the judge's: --judge-model or a route
            result = run_audit(
                pool.workers(), rows, n, cfg.seed if seed is None else seed, api=api or settings.evolve_api
            )
        finally:
            pool.stop()
    return {**result, "teacher": f"{model} ({backend})"}


def main(argv: list[str] | None = None, teacher: TeacherFactory | None = None) -> int:
    """The CLI; `teacher` (a zero-argument factory) replaces the configured teacher, for tests."""
    args = build_parser().parse_args(argv)
    # INFO from this project's loggers only: matplotlib's and spaCy's INFO lines are noise here
    logging.basicConfig(format="%(asctime)s %(levelname)s %(message)s", datefmt="%H:%M:%S")
    for name in ("synth_instruct", "generator"):
        logging.getLogger(name).setLevel(logging.INFO)
    try:
        require_extra()
    except ReportExtraMissing as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if not (args.run_dir / CONFIG).is_file():
        print(f"error: {args.run_dir} is not a run folder (no {CONFIG})", file=sys.stderr)
        return 2
    result = None
    try:
        if args.audit > 0:
            cfg = audit_config(args.run_dir, args)
            result = audit(args.run_dir, args.audit, args.audit_seed, cfg, teacher, args.api)
    except (ConfigError, RayUnavailable) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except TeacherUnavailable as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    text = render_run(args.run_dir, args.out, result)
    print(text)
    print(f"wrote {args.out or args.run_dir / HTML}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
