"""`eval.md`: a fine-tune's evaluation as a page a person reads (`eval.json` is what programs read).

The held-out loss and perplexity of the base and the tuned model, the judge's tally when there is one,
then each held-out sample with the base and the tuned answer side by side (a two-column table; newlines
become <br> and pipes are escaped, so any answer fits in one cell) and the dataset's reference answer.
"""

from __future__ import annotations

from typing import Any


def cell(text: str) -> str:
    """Text safe inside one Markdown table cell."""
    text = text.strip().replace("\\", "\\\\").replace("|", "\\|")
    return "<br>".join(text.splitlines()) or "*(empty)*"


def _number(value: float | None, digits: int = 4) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def render(result: dict[str, Any]) -> str:
    base, tuned = result["base"], result["tuned"]
    held = result["held_out"]
    lines = [
        "# Fine-tune evaluation",
        "",
        f"- tuned model: `{result['models']['tuned']}`",
        f"- base model: `{result['models']['base']}`",
        f"- data: `{result['data']}` ({result['format']} prompts); held-out split: {held['rows']} rows, "
        f"{held['tokens']} completion tokens",
        "",
        "| model | held-out loss | perplexity |",
        "| --- | ---: | ---: |",
        f"| base | {_number(base['loss'])} | {_number(base['perplexity'], 2)} |",
        f"| tuned | {_number(tuned['loss'])} | {_number(tuned['perplexity'], 2)} |",
        "",
        f"Loss: mean cross-entropy per completion token (prompt tokens masked, as in training). "
        f"Score ({result['score_kind'].replace('_', ' ')}): **{_number(result['score'], 3)}**.",
        "",
    ]
    judge = result.get("judge")
    if judge:
        lines += [
            f"## Judge: {judge['teacher']}",
            "",
            "Each sample asked twice, positions swapped; win rate = (wins + ties/2) / readable comparisons.",
            "",
            "| win rate | wins | losses | ties | unreadable | consistent samples | answered A / B |",
            "| ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
            f"| {_number(judge['win_rate'], 3)} | {judge['wins']} | {judge['losses']} | {judge['ties']} | "
            f"{judge['unreadable']} | {judge['consistent']} of {judge['samples']} | "
            f"{judge['first_preferred']} / {judge['second_preferred']} |",
            "",
        ]
    lines += ["## Held-out samples", ""]
    for i, s in enumerate(result["samples"], start=1):
        lines += [f"### {i}. {cell(s['instruction'])}", ""]
        if s["input"].strip():
            lines += [f"Input: {cell(s['input'])}", ""]
        lines += [
            "| base | tuned |",
            "| --- | --- |",
            f"| {cell(s['base'])} | {cell(s['tuned'])} |",
            "",
            f"Reference: {cell(s['reference'])}",
            "",
        ]
    return "\n".join(lines).rstrip() + "\n"
