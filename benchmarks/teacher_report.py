"""The teacher benchmark's Markdown table and the ratios between its modes."""

from __future__ import annotations

import argparse


def markdown(rows: list[dict], args: argparse.Namespace, info: dict) -> str:
    by = {r["mode"][:3]: r for r in rows}
    a, b, d = by.get("(a)"), by.get("(b)"), by.get("(d)")
    lines = [
        "# Teacher throughput: the same bootstrap prompts, the same model",
        "",
        f"Command: `{info['command']}`",
        "",
        f"Host: {info['host']}. Model: {info['model']} ({info['dtype']}). {args.prompts} Self-Instruct proposal "
        f"prompts from seeds/175.jsonl, self-instruct decoding (temperature 0.7, top_p 0.5, presence penalty "
        f"2.0, stop sequences), max_tokens {args.max_tokens}, one seed per prompt. Generation time only; "
        "start-up in its own column. Kept = parsed, heuristic filters, ROUGE-L <= 0.7 against seeds and kept.",
        "",
        "| Mode | In flight | Tokens | Seconds | Tokens/s | Kept | Kept/min | Start-up s | Load avg |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['mode']} | {r.get('in_flight', args.hf_batch if r['mode'].startswith('(d)') else args.prompts)} "
            f"| {r['tokens']} | {r['seconds']} | {r['tok_s']} | {r['kept']} | {r['kept_per_min']} "
            f"| {r.get('init_s', '')} | {r.get('load', '')} |"
        )
    lines.append("")
    if a and b:
        lines.append(f"- **(b)/(a) = {b['tok_s'] / a['tok_s']:.2f}** in tokens/s (goal >= 0.9).")
    if b and d:
        lines.append(f"- **(b)/(d) = {b['tok_s'] / d['tok_s']:.1f}x** transformers `generate` in tokens/s.")
    return "\n".join(lines) + "\n"
