"""In-context mixes: a pure function of the pool's ids and a seed (the driver calls it, not the actor)."""

from __future__ import annotations

from generator.pool import sample_mixes

SEEDS = [f"seed:{i}" for i in range(10)]


def test_mixes_take_machine_tasks_when_there_are_some_and_fill_with_seeds():
    early = sample_mixes(SEEDS, ["m1"], [1, 2, 3], n_seed=6, n_machine=2)
    assert all(len(mix) == 8 and "m1" in mix and len(set(mix)) == 8 for mix in early)
    later = sample_mixes(SEEDS, [f"m{i}" for i in range(50)], [1, 2, 3], n_seed=6, n_machine=2)
    assert all(sum(x.startswith("m") for x in mix) == 2 for mix in later)


def test_a_seed_fixes_its_mix_whatever_else_is_drawn_with_it():
    machine = [f"m{i}" for i in range(50)]
    alone = sample_mixes(SEEDS, machine, [7], 6, 2)
    together = sample_mixes(SEEDS, machine, [5, 7, 9], 6, 2)
    assert together[1] == alone[0] and together[0] != together[1]
