"""The dataset card every export writes (`README.md`): YAML front matter, then how the data was made.

The front matter follows the Hugging Face dataset card fields (license, language, task_categories,
size_categories, and `configs` pointing at the parquet files of an hf export) and adds a
`synth_instruct:` block with the run's facts: the seeds, the teacher, the profile and domain, the
evolution rounds, every filter with its drop counts (stats.json's `filters`, as the run counted them),
and the rows and instructions of each split. The body repeats the numbers in tables and says what the
data is worth. Everything here is a pure function of `ExportFacts`.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import Any

import yaml
from pydantic import BaseModel

EXPORTER_VERSION = 1  # bump when the files or the card of an export change shape
TEACHER_TERMS = (
    "The outputs were written by a teacher model: its licence and terms of use apply to them (some "
    "forbid training competing models). Check them before you publish or train on this data."
)


class TeacherFacts(BaseModel):
    backend: str  # the run's --teacher: vllm | openai
    model: str
    embedded: bool  # answered by the zero-setup SmolLM2-135M-Instruct
    base_url: str | None = None
    answered_by: list[str] = []  # "model (backend)" of every teacher call behind the exported rows


class SplitCount(BaseModel):
    instructions: int
    rows: int


class ExportFacts(BaseModel):
    """What the card records: the run's config and stats, and what the export wrote."""

    format: str
    run_name: str
    seeds: str | None  # None: a seedless run (the magpie profile)
    seeds_sha256: str | None
    seed: int
    teacher: TeacherFacts
    profile: str
    domain: str | None
    verify: bool
    evolve_rounds: int
    filters: dict[str, dict[str, int]]
    ratios: tuple[float, float, float]
    split_seed: int
    splits: dict[str, SplitCount]  # the splits written (those with rows), in split order
    stages: list[dict[str, Any]]  # dataset().sources(): which stage wrote which rows
    license: str
    system: str | None = None

    @property
    def total(self) -> SplitCount:
        return SplitCount(
            instructions=sum(s.instructions for s in self.splits.values()),
            rows=sum(s.rows for s in self.splits.values()),
        )


def size_category(rows: int) -> str:
    """The Hub's size_categories bucket for a number of rows."""
    names = ["1K", "10K", "100K", "1M", "10M", "100M", "1B", "10B", "100B", "1T"]
    if rows < 1000:
        return "n<1K"
    for i in range(1, len(names)):
        if rows < 10 ** (i + 3):
            return f"{names[i - 1]}<n<{names[i]}"
    return "n>1T"


def package_version() -> str:
    try:
        return version("synth-instruct")
    except PackageNotFoundError:  # run from a checkout that was never installed
        return "unknown"


def metadata(facts: ExportFacts) -> dict[str, Any]:
    """The YAML front matter."""
    meta: dict[str, Any] = {"license": facts.license}
    if facts.license == "other":
        meta["license_name"] = "teacher-terms"
        meta["license_details"] = TEACHER_TERMS
    meta |= {
        "pretty_name": f"{facts.run_name} (synth-instruct)",
        "language": ["en"],
        "task_categories": ["text-generation"],
        "tags": ["synthetic", "instruction-tuning", "synth-instruct"],
        "size_categories": [size_category(facts.total.rows)],
    }
    if facts.format == "hf":
        meta["configs"] = [
            {
                "config_name": "default",
                "data_files": [{"split": s, "path": f"data/{s}.parquet"} for s in facts.splits],
            }
        ]
    meta["synth_instruct"] = {
        "exporter_version": EXPORTER_VERSION,
        "synth_instruct_version": package_version(),
        "format": facts.format,
        "run_name": facts.run_name,
        "seeds": {"file": facts.seeds, "sha256": facts.seeds_sha256},
        "seed": facts.seed,
        "teacher": facts.teacher.model_dump(),
        "profile": facts.profile,
        "domain": facts.domain,
        "verify": facts.verify if facts.domain else None,
        "evolve_rounds": facts.evolve_rounds,
        "filters": facts.filters,
        "split": {"by": "instruction", "ratios": list(facts.ratios), "seed": facts.split_seed},
        "splits": {name: count.model_dump() for name, count in facts.splits.items()},
        "total": facts.total.model_dump(),
        "stages": facts.stages,
        "license": facts.license,
        **({"system": facts.system} if facts.system else {}),
    }
    return meta


def _table(header: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _reasons(counters: dict[str, int]) -> str:
    reasons = {k.removeprefix("dropped_"): v for k, v in counters.items() if k.startswith("dropped_")}
    return ", ".join(f"{k} {v}" for k, v in sorted(reasons.items())) or "-"


def body(facts: ExportFacts) -> str:
    """The markdown under the front matter: how the data was made, the numbers, its limits."""
    t = facts.teacher
    teacher = f"`{t.model}` ({t.backend}{', embedded' if t.embedded else ''})"
    if t.answered_by and t.answered_by != [f"{t.model} ({t.backend})"]:
        teacher += f", answered by {', '.join(f'`{a}`' for a in t.answered_by)}"
    source = (
        f"from the seed tasks in `{facts.seeds}`"
        if facts.seeds
        else "with no seed tasks (the teacher wrote each query from its chat template's user turn)"
    )
    made = [
        f"Grown by synth-instruct {source} with the "
        f"`{facts.profile}` profile (run `{facts.run_name}`, seed {facts.seed}), teacher {teacher}.",
    ]
    if facts.domain:
        made.append(
            f"Domain `{facts.domain}`: every answer was checked by the domain's verifier"
            + (
                " and only verified items were kept."
                if facts.verify
                else " (verdicts recorded, not enforced)."
            )
        )
    if facts.evolve_rounds:
        made.append(f"{facts.evolve_rounds} Evol-Instruct round(s) followed the bootstrap.")
    r = facts.ratios
    made.append(
        f"Split by instruction ({r[0]:g}/{r[1]:g}/{r[2]:g}, seed {facts.split_seed}): all the instances "
        "of one instruction are in one split."
    )
    total = facts.total
    splits = _table(
        ["split", "instructions", "rows"],
        [[n, c.instructions, c.rows] for n, c in facts.splits.items()]
        + [["total", total.instructions, total.rows]],
    )
    filters = _table(
        ["filter", "seen", "kept", "dropped", "reasons"],
        [
            [n, c.get("total", 0), c.get("kept", 0), c.get("dropped", 0), _reasons(c)]
            for n, c in facts.filters.items()
        ],
    )
    if t.embedded:
        limits = (
            "The teacher was the embedded SmolLM2-135M-Instruct, a 135M-parameter model that proves the "
            "pipeline runs: its instructions are weak and its answers weaker, often wrong. Do not train "
            "a model you care about on this data; grow it again with a real teacher."
        )
    else:
        limits = (
            "Every output was written by the teacher and, outside a verified domain, checked by nothing "
            "but heuristic filters: expect its mistakes and its biases in the data."
        )
    parts = [
        f"# {facts.run_name}",
        "An instruction-tuning dataset (instruction, input, output) grown by a teacher LLM.",
        "## How it was made",
        " ".join(made),
        "## Splits",
        splits,
        "## Filters",
        "What each filter saw, kept and dropped during the run (stats.json):",
        filters if facts.filters else "No filter ran.",
        "## Limits",
        limits,
        "## Licence",
        f"`{facts.license}`. {TEACHER_TERMS}",
    ]
    return "\n\n".join(parts) + "\n"


def render_card(facts: ExportFacts) -> str:
    front = yaml.safe_dump(metadata(facts), sort_keys=False, allow_unicode=True, width=100)
    return f"---\n{front}---\n\n{body(facts)}"
