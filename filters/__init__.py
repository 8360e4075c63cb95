from filters import eliminator, quality  # noqa: F401  (Evol-Instruct eliminator rules, score filter)
