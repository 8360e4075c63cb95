"""The stage runner: one loop that takes every stage of a run through resume, rounds and commits.

    run folder locked ─► config checked ─► for each stage: resume its section ─► rounds ─► commit each
                                                           (cut its files back)   │
                                  stats.json, state.json, progress, stop ◄────────┘
    ─► dataset (every stage's part, in stage order) ─► alpaca.json, stats.json

Everything stages share lives here, once: the failed-rounds guard, stats merging (each stage keeps its
own counters in its section; stats.json adds them up), the progress bar and `on_progress`, a clean stop
after the round in flight commits, and the dataset. Stages are in `generator/stages/`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from tqdm import tqdm

from generator.config import ADDED_LATER, ConfigError, RunConfig, data_values
from generator.dataset import Dataset, compose
from generator.errors import TeacherUnavailable
from generator.records import Record, alpaca_rows
from generator.run_folder import ALPACA, CONFIG, STATS, RunFolder, read_json, write_json_atomic
from generator.stages import plan
from generator.stages.base import Progress, Resumed, Stage
from generator.state import RunState, StageState
from generator.stats import RunStats
from generator.teachers.routing import DEFAULT
from generator.worker_pool import Workers

log = logging.getLogger("synth_instruct")

ProgressCallback = Callable[[Progress], None]


def check_config(folder: RunFolder, cfg: RunConfig) -> None:
    """Refuse to mix two different runs in one folder; record the config of a new one.

    Only the settings that change a run's data count (they say so on their field in RunConfig):
    raising the target or the worker count resumes the same run.
    """
    path = folder.file(CONFIG)
    current = cfg.model_dump(mode="json")
    if path.exists():
        before = read_json(path)
        before = {**ADDED_LATER, **before}  # a folder from before a field existed made it this way
        old, new = data_values(before), data_values(current)
        changed = sorted(k for k in RunConfig.data_fields() if old[k] != new[k])
        if changed:
            raise ConfigError(
                f"{folder.path} holds a run with different settings ({', '.join(changed)}); "
                "use another --out, or the same settings to resume it"
            )
    write_json_atomic(path, current)


class Runner:
    """Runs the stages of one run folder. `run()` returns stats.json's content."""

    def __init__(
        self,
        cfg: RunConfig,
        folder: RunFolder,
        workers: Workers,
        on_progress: ProgressCallback | None = None,
        stop: threading.Event | None = None,
        owns_workers: bool = True,
    ) -> None:
        self.cfg, self.folder = cfg, folder
        self.stages: list[Stage] = plan(cfg)
        self.context = workers
        # False: a pool shared with other runs (the REST service's one teacher), left up at the end.
        self.owns_workers = owns_workers
        self.on_progress = on_progress
        self.stop = stop or threading.Event()
        self.state = RunState()
        self.stopped = False

    def run(self) -> dict[str, Any]:
        try:
            state = self.folder.load_state()
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        if state is None:
            self.folder.reset()
        self.state = state or RunState()
        inputs: list[Record] = []
        committed: dict[str, list[Record]] = {}  # the records of the stages run, as on disk
        try:
            for stage in self.stages:
                if self.stop.is_set():
                    self.stopped = True
                    break
                committed[stage.name] = self._run_stage(stage, inputs)
                inputs = inputs + stage.contribution(inputs, committed[stage.name])
        finally:
            if self.owns_workers:
                self.context.stop()

        dataset = compose(self.stages, self.folder, self.state, committed)
        rows = [row.model_dump() for row in dataset.rows()]
        write_json_atomic(self.folder.file(ALPACA), rows)
        summary = self.summary(dataset)
        write_json_atomic(self.folder.file(STATS), summary)
        return summary

    # -- one stage -----------------------------------------------------------------------------------

    def _run_stage(self, stage: Stage, inputs: list[Record]) -> list[Record]:
        """Resume the stage, run its rounds, commit each; returns its committed records."""
        if stage.files is None:
            return []
        section: StageState | None = self.state.section(stage.name)
        fingerprint = stage.fingerprint(inputs)
        if section is not None and section.input != fingerprint:
            # What the stage started from changed (the bootstrap grew, another input file): its
            # records no longer follow from it. Start it over; with the request cache, what was done
            # before costs nothing to redo.
            log.warning(
                "the input of %s changed since it ran in %s: redoing it", stage.name, self.folder.path
            )
            section = None
            self.state = self.state.with_section(stage.name, None)
        if section is None:
            self.folder.reset_stage(stage.files)
            records: list[Record] = []
        else:
            records = self.folder.recover(stage.files, section.round)
            log.info(
                "resuming %s in %s after round %d: %d records so far",
                stage.name,
                self.folder.path,
                section.round,
                len(records),
            )
        stats = RunStats(section.stats if section else None)
        run = stage.open(self.context, inputs, Resumed(list(records), section))
        if run is None:
            return records
        # The clock runs from here: actor start-up is not the stage's work (wall_time_s, tokens/s).
        started, elapsed_before = time.monotonic(), stats.elapsed_s
        failed_rounds = 0
        # The stage's records in the dataset so far; `Progress.rows` are those a round adds (only
        # worked out for a caller who listens: it walks the stage's records once a round).
        in_dataset = len(stage.contribution(inputs, records)) if self.on_progress else 0
        bar = tqdm(total=stage.total(), unit=stage.unit, desc=stage.name, dynamic_ncols=True)
        rounds = run.rounds()
        try:
            for done in rounds:
                bar.update(min(done.done, stage.total()) - bar.n)
                if done.failed:
                    failed_rounds += 1
                    stats.add(done.stats)  # the failed requests count; the round itself is tried again
                    log.warning(
                        "%s round %d: every request failed (%d in a row)",
                        stage.name,
                        done.round,
                        failed_rounds,
                    )
                    if failed_rounds >= self.cfg.max_failed_rounds:
                        raise TeacherUnavailable(
                            f"the teacher answered none of the last {failed_rounds} rounds (of the {stage.name} stage); "
                            f"last error: {done.error}. Committed items are saved; rerun to resume."
                        )
                    continue
                failed_rounds = 0
                assert done.state is not None
                stats.add(done.stats)
                stats.elapsed_s = elapsed_before + time.monotonic() - started
                with stats.timed("write"):
                    self.folder.append_round(stage.files, done.records, done.dropped, done.candidates)
                    section = done.state.model_copy(update={"stats": stats.to_state(), "input": fingerprint})
                    self.state = self.state.with_section(stage.name, section)
                    self.folder.commit(self.state)
                    summary = self.summary(None)
                    write_json_atomic(self.folder.file(STATS), summary)
                records.extend(done.records)
                log.info("%s %s", stage.name, done.summary)
                bar.set_postfix(
                    round=done.round,
                    kept=done.kept,
                    tok_s=f"{stats.tokens('generated') / max(stats.elapsed_s, 1e-9):.0f}",
                )
                if self.on_progress is not None:
                    part = stage.contribution(inputs, records)
                    new_rows = [row for r in part[in_dataset:] for row in alpaca_rows(r)]
                    in_dataset = len(part)
                    self.on_progress(
                        Progress(
                            stage.name,
                            done.round,
                            done.kept,
                            stage.target(),
                            min(done.done, stage.total()),
                            stage.total(),
                            stage.unit,
                            summary,
                            new_rows,
                        )
                    )
                if self.stop.is_set():
                    log.info("stopping after %s round %d, as asked: rerun to resume", stage.name, done.round)
                    self.stopped = True
                    break
        finally:
            rounds.close()
            run.close()
            bar.close()
        return records

    # -- accounts ------------------------------------------------------------------------------------

    def prices(self) -> dict[str, tuple[float, float]]:
        """Each teacher's prices per 1M prompt and completion tokens, by name."""
        return {
            name: (c.price_prompt_per_1m, c.price_completion_per_1m)
            for name in self.cfg.teacher_names()
            for c in [self.cfg.for_teacher(name)]
        }

    def summary(self, dataset: Dataset | None) -> dict[str, Any]:
        """stats.json: every stage's counters added up, each stage's own report, and the dataset."""
        total = RunStats()
        for stage in self.stages:
            section = self.state.section(stage.name)
            if section is not None:
                total.add(RunStats(section.stats))
        summary = total.summary(self.prices())
        for stage in self.stages:
            report = stage.report(self.state.section(stage.name))
            if report is not None:
                summary[stage.name] = report
        windows = self.context.window_report()
        if windows is not None:
            summary["teacher"]["in_flight"] = windows.get(DEFAULT)
            for name, window in windows.items():
                summary["teachers"].setdefault(name, {})["in_flight"] = window
        identities = self.context.known_identities()
        for name, (backend, model) in identities.items():
            summary["teachers"].setdefault(name, {}).update(backend=backend, model=model)
        if dataset is not None:
            summary["counts"]["dataset_instructions"] = len(dataset.records())
            summary["counts"]["dataset_rows"] = len(dataset.rows())
            summary["dataset"] = dataset.sources()
        if self.stopped:
            summary["stopped"] = True
        return summary
