"""A small vocabulary for synthetic instructions: few words, so that many pairs land near a
threshold (the dedup tests need near-duplicates, not just fresh texts)."""

VOCAB = [
    "write",
    "a",
    "poem",
    "story",
    "list",
    "of",
    "five",
    "tips",
    "for",
    "cats",
    "dogs",
    "the",
    "sea",
    "sky",
    "about",
    "summer",
    "rain",
]
