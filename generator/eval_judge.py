"""The teacher as judge of a fine-tune: which of two answers to a held-out instruction is better?

Each held-out sample is asked twice, the base model's answer first and then the tuned model's first,
so a judge that prefers a position (small models often answer "A") adds as many losses as wins and
the order bias cancels. Every verdict is read from the tuned model's side:

    win rate = (wins + ties / 2) / comparisons

where comparisons counts the readable verdicts; unreadable ones are reported beside it, never counted
as losses. `consistent` counts the samples whose two verdicts agree once the swap is undone, a direct
measure of how much the judge's verdicts depend on the order (the embedded 135M teacher's barely do
anything else, which is why its win rate is noise, not a measurement).

`PairJudge` is an ordinary task (prompt/parse, template `eval_judge.txt`); `judge_samples` starts the
teacher's workers, as the report's audit does, and stops them when done. The judge's teacher is the
data folder's own (its config.json), with any `--judge-*` teacher flag laid over it: `add_judge_flags`
adds every teacher flag of `generator.run` under that prefix, since `--model` here names the student.
"""

from __future__ import annotations

import argparse
import logging
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal, NamedTuple

from generator.config import ConfigError, RunConfig
from generator.run import add_teacher_flags
from generator.run_folder import CONFIG, read_json
from generator.tasks.base import request_for, template
from generator.teachers.base import SamplingParams, TeacherRequest, TeacherResponse
from generator.workers import TeacherFactory

log = logging.getLogger(__name__)

Verdict = Literal["A", "B", "tie"]
Outcome = Literal["win", "loss", "tie"]
# Greedy, as the run's judges decode: a verdict as repeatable as the teacher allows; room for a model
# that says "Answer A is better." before it stops.
JUDGE_SAMPLING = SamplingParams(temperature=0.0, top_p=1.0, max_tokens=16)
PREFIX = "judge_"

_LEADING = re.compile(r"^\W*(?:answer\s*)?(a|b|tie|equal|both)\b", re.IGNORECASE)
_NAMED = re.compile(r"\banswer\s*([ab])\b", re.IGNORECASE)


class JudgePair(NamedTuple):
    instruction: str
    input: str
    first: str  # shown as Answer A
    second: str  # shown as Answer B


def parse_verdict(text: str) -> Verdict | None:
    """ "A", "B" or "tie" from the judge's reply ("B", "Answer A.", "Tie"); None when it says neither, or
    names both answers without a leading verdict."""
    match = _LEADING.match(text)
    if match is not None:
        word = match.group(1).lower()
        return "tie" if word in ("tie", "equal", "both") else ("A" if word == "a" else "B")
    named = {m.upper() for m in _NAMED.findall(text)}
    if len(named) == 1:
        return "A" if "A" in named else "B"
    return None


class PairJudge:
    stage = "eval_judge"

    def __init__(self, api: str = "chat", params: SamplingParams = JUDGE_SAMPLING) -> None:
        self.api, self.params = api, params

    def prompt(self, row: JudgePair) -> TeacherRequest:
        text = template("eval_judge").format(
            instruction=row.instruction,
            input=row.input or "(empty)",
            first=row.first.strip() or "(empty)",
            second=row.second.strip() or "(empty)",
        )
        return request_for(self.api, text, self.params)

    def parse(self, row: JudgePair, response: TeacherResponse) -> Verdict | None:
        return parse_verdict(response.text)


def swapped_pairs(samples: Sequence[dict[str, str]]) -> list[JudgePair]:
    """Two pairs per sample, in sample order: (base, tuned), then (tuned, base)."""
    pairs = []
    for s in samples:
        pairs.append(JudgePair(s["instruction"], s["input"], s["base"], s["tuned"]))
        pairs.append(JudgePair(s["instruction"], s["input"], s["tuned"], s["base"]))
    return pairs


def outcome(verdict: Verdict | None, tuned_first: bool) -> Outcome | None:
    """The tuned model's result in one comparison."""
    if verdict is None or verdict == "tie":
        return verdict
    return "win" if (verdict == "A") == tuned_first else "loss"


def summarize(verdicts: Sequence[Verdict | None]) -> dict[str, Any]:
    """The win rate of the tuned model over verdicts in `swapped_pairs` order."""
    outcomes = [outcome(v, tuned_first=i % 2 == 1) for i, v in enumerate(verdicts)]
    wins, losses, ties = (outcomes.count(k) for k in ("win", "loss", "tie"))
    readable = wins + losses + ties
    pairs = list(zip(outcomes[::2], outcomes[1::2], strict=True))
    return {
        "samples": len(pairs),
        "asked": len(outcomes),
        "comparisons": readable,
        "wins": wins,
        "losses": losses,
        "ties": ties,
        "unreadable": len(outcomes) - readable,
        "win_rate": round((wins + ties / 2) / readable, 4) if readable else None,
        "consistent": sum(1 for a, b in pairs if a is not None and a == b),
        "first_preferred": sum(1 for v in verdicts if v == "A"),
        "second_preferred": sum(1 for v in verdicts if v == "B"),
    }


def add_judge_flags(p: argparse.ArgumentParser) -> None:
    """`--judge`, and every teacher flag of `generator.run` as `--judge-<flag>` (dest `judge_<dest>`)."""
    group = p.add_argument_group("judge", "the teacher as judge of base vs tuned answers (off by default)")
    group.add_argument(
        "--judge",
        action="store_true",
        help="have the teacher compare base and tuned answers pairwise, positions swapped (starts the "
        "teacher: the data folder's own unless --judge-* flags say otherwise)",
    )
    teacher = argparse.ArgumentParser(add_help=False)
    add_teacher_flags(teacher)
    for action in teacher._actions:
        flag = "--judge-" + action.option_strings[0].lstrip("-")
        dest = PREFIX + action.dest
        if action.dest == "api":  # not the run's proposal endpoint: see `judge_samples`
            action.help = "endpoint kind for the judge prompt (default: the run's --evolve-api, chat)"
        if isinstance(action, argparse._StoreConstAction):
            group.add_argument(
                flag, dest=dest, action="store_const", const=action.const, default=None, help=action.help
            )
        else:
            kw: dict[str, Any] = {"type": action.type} if action.type is not None else {}
            group.add_argument(flag, dest=dest, default=None, choices=action.choices, help=action.help, **kw)


def judge_config(data: Path, args: argparse.Namespace) -> RunConfig:
    """The data folder's run config with the `--judge-*` teacher flags laid over it."""
    flags = {k[len(PREFIX) :]: v for k, v in vars(args).items() if k.startswith(PREFIX) and v is not None}
    try:
        return RunConfig.model_validate({**read_json(data / CONFIG), **flags})
    except ValueError as exc:
        raise ConfigError(f"--judge: {exc}") from None


def judge_samples(
    samples: Sequence[dict[str, str]],
    cfg: RunConfig,
    teacher: TeacherFactory | None = None,
    api: str | None = None,
) -> dict[str, Any]:
    """Start the judge's workers, ask every swapped pair, stop them; the summary and each verdict.

    The prompt goes to `api` (an explicit --judge-api), else to the endpoint the run's own judges used
    (`evolve_api`), as the report's audit does."""
    from generator.ray_runtime import ray_runtime
    from generator.worker_pool import start_workers, teacher_settings
    from generator.workers import run_on_workers

    if cfg.teacher == "vllm" and cfg.model is None and teacher is None:
        log.warning("judging with the embedded 135M teacher: its verdicts are noise, not a measurement")
    settings = teacher_settings(cfg)
    pairs = swapped_pairs(samples)
    with ray_runtime(settings.ray_address):
        pool = start_workers(settings, teacher)
        try:
            backend, model = pool.identity_for("eval_judge")  # the judge's: --judge-model or a route
            task = PairJudge(api or settings.evolve_api)
            verdicts = [parsed for _, parsed in run_on_workers(pool.workers(), task, pairs)]
        finally:
            pool.stop()
    return {
        "teacher": f"{model} ({backend})",
        **summarize(verdicts),
        "verdicts": [[verdicts[i], verdicts[i + 1]] for i in range(0, len(verdicts), 2)],
    }
