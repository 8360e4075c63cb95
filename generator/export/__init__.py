"""Exports of a run's dataset for fine-tuning: Alpaca JSON, ShareGPT, OpenAI chat, a Hugging Face folder.

    python -m generator.export out/<run> --format alpaca|sharegpt|openai-chat|hf [--split 0.9/0.05/0.05]

Every export is split by instruction (`splits.py`: no instruction's instances in two splits) and
carries a dataset card (`card.py`) with the run's seeds, teacher, filters and counts. `split_rows` is
also what fine-tuning and evaluation use, so they see the same train and test instructions as an
export made with the same ratios and seed.
"""

from __future__ import annotations

from generator.export.splits import DEFAULT_SPLIT, SPLITS, SplitError, parse_split, split_records, split_rows

__all__ = ["DEFAULT_SPLIT", "SPLITS", "SplitError", "parse_split", "split_records", "split_rows"]
