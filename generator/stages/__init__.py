"""The stages of a run, in order. A new stage is a class with the `Stage` interface and one line here.

bootstrap (grow from seeds)  ─►  evolve (Evol-Instruct, with --evolve-rounds)
input (the rows of a file)   ─►  evolve                     (python -m generator.evolve)
domain (checked answers)                                    (python -m generator.run --domain NAME)
"""

from __future__ import annotations

from generator.config import RunConfig
from generator.stages.base import Stage


def plan(cfg: RunConfig) -> list[Stage]:
    """The stages `cfg` runs, in order; each stage's part of the dataset follows the one before."""
    from generator.stages.bootstrap import Bootstrap
    from generator.stages.domain import DomainStage
    from generator.stages.evolution import Evolution
    from generator.stages.input_rows import InputRows

    if cfg.domain is not None:
        return [DomainStage(cfg)]  # answers checked by the domain's verifier (no evolution after it)
    stages: list[Stage] = [Bootstrap(cfg) if cfg.bootstrap else InputRows(cfg)]
    if cfg.evolve_rounds > 0:
        stages.append(Evolution(cfg))
    return stages
