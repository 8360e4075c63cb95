"""The report's tables, from metrics dicts (`metrics.metrics`) to rows of formatted cells.

Pure: both the HTML page and the markdown summary are made from these, so they always agree. The
headline columns (`HEADLINE`) are the one per-variant table the comparison shows.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Table:
    headers: list[str]
    rows: list[list[str]]


def _at(m: Mapping[str, Any], *path: str) -> Any:
    """m[path[0]][path[1]]..., or None where any step is missing or None."""
    value: Any = m
    for key in path:
        if not isinstance(value, Mapping) or value.get(key) is None:
            return None
        value = value[key]
    return value


def _percent(rate: float | None) -> float | None:
    return None if rate is None else round(100 * rate, 2)


# (column, how to read it from a metrics dict); a None value prints as "-"
HEADLINE: list[tuple[str, Callable[[Mapping[str, Any]], Any]]] = [
    ("kept instructions", lambda m: _at(m, "kept", "instructions")),
    ("kept rows", lambda m: _at(m, "kept", "rows")),
    ("ROUGE-L vs seed (mean)", lambda m: _at(m, "diversity", "rouge_vs_seed", "mean")),
    ("ROUGE-L vs kept (mean)", lambda m: _at(m, "diversity", "rouge_vs_kept", "mean")),
    ("distinct-1", lambda m: _at(m, "diversity", "distinct_1")),
    ("distinct-2", lambda m: _at(m, "diversity", "distinct_2")),
    ("root verbs", lambda m: _at(m, "diversity", "root_verbs")),
    ("verb-object pairs", lambda m: _at(m, "diversity", "verb_object_pairs")),
    ("personas", lambda m: _at(m, "diversity", "personas") or None),
    ("instruction words (mean)", lambda m: _at(m, "lengths", "instruction_words", "mean")),
    ("input words (mean)", lambda m: _at(m, "lengths", "input_words", "mean")),
    ("output words (mean)", lambda m: _at(m, "lengths", "output_words", "mean")),
    ("teacher tokens / row", lambda m: _at(m, "teacher", "tokens_per_row")),
    ("cost / row (USD)", lambda m: _at(m, "teacher", "cost_per_row_usd")),
    ("verified (%)", lambda m: _percent(_at(m, "verification", "pass_rate"))),
    ("downstream score", lambda m: _at(m, "downstream", "score")),
]
_OPTIONAL = {"verified (%)", "downstream score", "personas"}  # shown only where some variant has a value


def fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def headline(m: Mapping[str, Any]) -> dict[str, Any]:
    """The headline numbers of one metrics dict, by column name."""
    return {name: read(m) for name, read in HEADLINE}


def _columns(variants: Sequence[Mapping[str, Any]]) -> list[str]:
    values = [headline(m) for m in variants]
    return [n for n, _ in HEADLINE if n not in _OPTIONAL or any(v[n] is not None for v in values)]


def summary_table(m: Mapping[str, Any]) -> Table:
    values = headline(m)
    return Table(["metric", "value"], [[name, fmt(values[name])] for name in _columns([m])])


def comparison_table(variants: Sequence[tuple[str, Mapping[str, Any]]]) -> Table:
    """One row per variant, one column per headline metric."""
    columns = _columns([m for _, m in variants])
    rows = [[name, *(fmt(headline(m)[c]) for c in columns)] for name, m in variants]
    return Table(["variant", *columns], rows)


def _reasons(reasons: Mapping[str, int]) -> str:
    return ", ".join(f"{r} {n}" for r, n in reasons.items()) or "-"


def drops_table(m: Mapping[str, Any]) -> Table:
    rows = [
        [label, str(d["total"]), str(d["kept"]), str(d["dropped"]), _reasons(d["reasons"])]
        for label, d in (m.get("drops") or {}).items()
    ]
    return Table(["filter", "in", "kept", "dropped", "reasons"], rows)


def comparison_drops(variants: Sequence[tuple[str, Mapping[str, Any]]]) -> Table:
    """Dropped per filter (rows) and variant (columns); "-" where a variant does not run the filter."""
    labels: dict[str, None] = {}
    for _, m in variants:
        labels.update(dict.fromkeys(m.get("drops") or {}))
    rows = [[label, *(fmt(_at(m, "drops", label, "dropped")) for _, m in variants)] for label in labels]
    return Table(["filter", *(name for name, _ in variants)], rows)


_DISTRIBUTIONS = (
    ("ROUGE-L vs most similar seed", ("diversity", "rouge_vs_seed")),
    ("ROUGE-L vs most similar kept", ("diversity", "rouge_vs_kept")),
    ("instruction words", ("lengths", "instruction_words")),
    ("input words", ("lengths", "input_words")),
    ("output words", ("lengths", "output_words")),
)


def distributions_table(m: Mapping[str, Any]) -> Table:
    keys = ["n", "mean", "median", "p10", "p90", "min", "max"]
    rows = []
    for name, path in _DISTRIBUTIONS:
        s = _at(m, *path)
        rows.append([name, *(fmt(None if s is None else s[k]) for k in keys)])
    return Table(["", *keys], rows)


def verification_table(m: Mapping[str, Any]) -> Table | None:
    v = m.get("verification")
    if not v:
        return None
    rows = [
        ["teacher answers checked", str(v["checked"])],
        ["verified", str(v["verified"])],
        ["pass rate (%)", fmt(_percent(v["pass_rate"]))],
        ["failed", _reasons(v["failed"])],
        ["unverifiable", _reasons(v["unverifiable"])],
        ["repaired (the domain's own answer kept)", str(v["repaired"])],
        ["verdicts on kept rows", _reasons(v["kept_verdicts"])],
    ]
    return Table([f"{v['domain']} ({v['method']})", ""], rows)


def evolve_table(m: Mapping[str, Any]) -> Table | None:
    rounds = m.get("evolve")
    if not rounds:
        return None
    rows = []
    for rnd, r in rounds.items():
        n = max((sum(c.values()) for c in r["counts"].values()), default=0)
        rows.append([str(rnd), str(n), fmt(r["mean_complexity"]), fmt(r["mean_quality"])])
    return Table(["round", "scored items", "mean complexity", "mean quality"], rows)


def audit_table(audit: Mapping[str, Any]) -> Table:
    """The paper's table: each question with the share of yes, and how many answers were readable."""
    rows = [[q["question"], fmt(q["percent"]), f"{q['yes']} / {q['answered']}"] for q in audit["questions"]]
    a = audit["all_valid"]
    rows.append(["All three yes", fmt(a["percent"]), f"{a['yes']} / {a['answered']}"])
    return Table(["question", "yes (%)", "yes / readable"], rows)
