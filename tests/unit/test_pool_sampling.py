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


def test_the_pool_judges_with_its_dedup_filters_by_label_and_names_the_duplicate():
    from filters.base import FilterSpec
    from generator.pool import Pool
    from generator.records import Record

    seeds = [Record(id="seed:s1", instruction="Write a poem about the sea.", origin="seed")]
    pool = Pool(
        seeds,
        [
            FilterSpec(name="rouge_l", params={"threshold": 0.95}),
            FilterSpec(name="rouge_l", label="rouge_l_strict", params={"threshold": 0.5}),
        ],
    )
    verdicts = pool.offer(
        [
            ("c1", "Write a poem about the sea."),  # a copy of the seed: the first filter drops it
            ("c2", "Give three tips for staying healthy at work."),
            ("c3", "Write a poem about the blue sea."),  # F 0.92 with the seed: only the strict one
            ("c4", "Give three tips for staying healthy at home."),  # like c2, which joined both
        ]
    )
    assert [(v.kept, v.filter, v.reason) for v in verdicts] == [
        (False, "rouge_l", "rouge_l>0.95"),
        (True, None, None),
        (False, "rouge_l_strict", "rouge_l>0.5"),
        (False, "rouge_l_strict", "rouge_l>0.5"),
    ]
    first, _, third, fourth = (v.near_duplicate for v in verdicts)
    assert first is not None and (first.filter, first.metric, first.id, first.score) == (
        "rouge_l",
        "rouge_l",
        "seed:s1",
        1.0,
    )
    assert third is not None and (third.id, third.text) == ("seed:s1", "Write a poem about the sea.")
    assert fourth is not None and fourth.id == "c2"
    assert [len(n.most_similar) for n in pool.describe_kept()] == [1]  # c2, against the seed
    assert pool.take_stats() == {
        "rouge_l": {"total": 4, "kept": 3, "dropped": 1, "dropped_rouge_l>0.95": 1},
        "rouge_l_strict": {"total": 3, "kept": 1, "dropped": 2, "dropped_rouge_l>0.5": 2},
    }
