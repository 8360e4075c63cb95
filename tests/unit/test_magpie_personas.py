"""The magpie profile's parts (the pre-query proposal, the answer, the checks) and personas."""

from __future__ import annotations

from pathlib import Path

import pytest

from generator.config import ConfigError, RunConfig, load_config
from generator.magpie import magpie_template
from generator.personas import SHIPPED, load_personas, persona_for
from generator.records import TaskRow
from generator.run import run
from generator.tasks.magpie import MagpieAnswer, MagpiePropose, persona_system
from generator.tasks.propose import ProposeRow, SelfInstructPropose
from generator.teachers.base import SamplingParams, TeacherResponse
from generator.teachers.scripted import ScriptedTeacher

SMOLLM = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}"
    "{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
PARAMS = SamplingParams(temperature=1.0, top_p=1.0, max_tokens=256, stop=("\n",))
REPO = Path(__file__).resolve().parents[2]


def test_the_proposal_is_the_templates_user_turn_and_stops_where_the_turn_ends():
    task = MagpiePropose(SMOLLM, PARAMS)
    request = task.prompt(ProposeRow(round=2, index=3, examples=[], seed=11))
    assert request.kind == "completion"
    assert request.prompt == (
        "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n"
        "<|im_start|>user\n"
    )
    assert request.params.stop == ("\n", "<|im_end|>") and request.params.seed == 11
    [record] = task.parse(ProposeRow(2, 3, [], 11), TeacherResponse(text=" How do tides work?\n"))
    assert (record.id, record.instruction, record.origin) == ("r2-p3-0", "How do tides work?", "magpie")
    assert record.facts == {"system": "You are a helpful AI assistant named SmolLM, trained by Hugging Face"}
    # an empty query is kept for the query filters to count; a truncated one is dropped whole
    assert task.parse(ProposeRow(2, 3, [], 11), TeacherResponse(text=""))[0].instruction == ""
    assert task.parse(ProposeRow(2, 3, [], 11), TeacherResponse(text="x", finish_reason="length")) == []


def test_a_persona_becomes_the_system_prompt_and_the_records_lineage():
    task = MagpiePropose(SMOLLM, PARAMS)
    row = ProposeRow(round=0, index=0, examples=[], seed=1, persona="a beekeeper in a mountain village")
    request = task.prompt(row)
    assert request.prompt is not None
    assert request.prompt.startswith(f"<|im_start|>system\n{persona_system(row.persona or '')}<|im_end|>\n")
    [record] = task.parse(row, TeacherResponse(text="When should I harvest honey?"))
    assert record.persona == "a beekeeper in a mountain village"
    assert record.facts == {"system": persona_system("a beekeeper in a mountain village")}


def test_personas_prefix_seeded_prompts_and_leave_the_others_unchanged():
    task = SelfInstructPropose(PARAMS)
    plain = task.prompt(ProposeRow(0, 0, [], 5))
    with_persona = task.prompt(ProposeRow(0, 0, [], 5, persona="a tax accountant"))
    assert with_persona.prompt is not None and plain.prompt is not None
    assert with_persona.prompt.endswith(plain.prompt) and "a tax accountant" in with_persona.prompt
    assert "a tax accountant" not in plain.prompt


def test_the_answer_is_a_chat_turn_and_a_cut_answer_is_no_instance():
    task = MagpieAnswer(SamplingParams(temperature=0.0), api="chat")
    request = task.prompt(TaskRow("r0-p0-0", "How do tides work?"))
    assert request.kind == "chat" and request.chat_messages() == [
        {"role": "user", "content": "How do tides work?"}
    ]
    row = TaskRow("r0-p0-0", "How do tides work?")
    assert task.parse(row, TeacherResponse(text=" The moon pulls. ")) == [
        task.parse(row, TeacherResponse(text="The moon pulls."))[0]
    ]
    assert task.parse(row, TeacherResponse(text="The moon", finish_reason="length")) == []


def test_the_shipped_personas_load_and_are_drawn_reproducibly(tmp_path: Path):
    personas = load_personas(SHIPPED)
    assert len(personas) >= 50 and all(not p.startswith("#") for p in personas)
    draws = [persona_for(personas, 42, r, s) for r in range(5) for s in range(8)]
    assert draws == [persona_for(personas, 42, r, s) for r in range(5) for s in range(8)]
    assert len(set(draws)) > 20  # spread over the list
    assert persona_for([], 42, 0, 0) is None
    empty = tmp_path / "none.txt"
    empty.write_text("# only a comment\n\n")
    with pytest.raises(ConfigError, match=r"--personas .*none.txt: no personas"):
        load_personas(empty)
    with pytest.raises(ConfigError, match="cannot read"):
        load_personas(tmp_path / "missing.txt")


def test_magpie_needs_no_seeds_but_the_others_do():
    assert RunConfig(profile="magpie").seeds is None
    with pytest.raises(ConfigError, match="the self-instruct profile grows from seed tasks: give --seeds"):
        load_config(None, {"profile": "self-instruct"})


def test_magpie_refuses_a_chat_only_endpoint_and_a_server_without_its_template(tmp_path: Path):
    server = {"profile": "magpie", "teacher": "openai", "model": "m", "base_url": "http://h/v1"}
    with pytest.raises(ConfigError, match="needs a completions endpoint"):
        magpie_template(RunConfig(**server, api="chat").resolved())
    chat_only = {"teachers": {"c": {"model": "c", "api": "chat"}}, "route": {"propose": "c"}}
    with pytest.raises(ConfigError, match="needs a completions endpoint"):
        magpie_template(RunConfig(**server, **chat_only).resolved())
    with pytest.raises(ConfigError, match="needs the chat template of m: give --chat-template"):
        magpie_template(RunConfig(**server).resolved())
    jinja = tmp_path / "t.jinja"
    jinja.write_text(SMOLLM)
    assert magpie_template(RunConfig(**server, chat_template=str(jinja)).resolved()) == SMOLLM
    with pytest.raises(ConfigError, match="--chat-template"):
        magpie_template(RunConfig(**server, chat_template=str(tmp_path / "nope.jinja")).resolved())


def test_a_magpie_run_grows_without_seeds_and_its_filters_say_why(ray_session: None, tmp_path: Path):
    jinja = tmp_path / "t.jinja"
    jinja.write_text(SMOLLM)
    cfg = RunConfig(profile="magpie", target=60, out=tmp_path / "m", chat_template=str(jinja), cache=False)
    summary = run(cfg, teacher=ScriptedTeacher)
    assert summary["counts"]["dataset_instructions"] == 60
    filters = summary["filters"]
    for name in ("query_empty", "query_is_answer", "query_template_tokens", "query_repeats_system"):
        assert filters[name]["dropped"] > 0, (name, filters[name])
    assert "answer" in summary["stages"] and "instances" not in summary["stages"]
    import json

    rows = json.loads((tmp_path / "m" / "alpaca.json").read_text())
    assert all(r["instruction"].startswith("Could you") and r["output"] for r in rows)
    dropped = [json.loads(line) for line in (tmp_path / "m" / "dropped.jsonl").read_text().splitlines()]
    assert {d["reason"] for d in dropped} >= {"empty", "answer", "template_tokens", "repeats_system"}

    # the shipped ablation file replays on a Magpie run: its query filter variants are judged, and the
    # variants for other profiles' filters are skipped, saying why
    from generator.ablate import replay_all
    from generator.variants import load_ablations

    results = {
        e["name"]: e for e in replay_all(tmp_path / "m", load_ablations(REPO / "ablations" / "filters.yaml"))
    }
    assert "no filter labelled bad_prefix" in results["no_bad_prefix"]["skipped"]
    base, off = results["baseline"]["metrics"], results["magpie_no_query_is_answer"]["metrics"]
    assert "query_is_answer" not in off["drops"] and base["drops"]["query_is_answer"]["dropped"] > 0


def test_personas_reach_the_prompts_and_the_records(ray_session: None, tmp_path: Path):
    cfg = RunConfig(
        seeds=REPO / "seeds" / "175.jsonl", target=10, out=tmp_path / "p", personas=SHIPPED, cache=False
    )
    run(cfg, teacher=ScriptedTeacher)
    import json

    records = [json.loads(line) for line in (tmp_path / "p" / "instructions.jsonl").read_text().splitlines()]
    personas = set(load_personas(SHIPPED))
    assert records and all(r["persona"] in personas for r in records)
    assert len({r["persona"] for r in records}) > 1


def test_a_variant_that_switches_profile_gets_that_profiles_published_settings():
    from generator.profiles import ALPACA, MAGPIE
    from generator.variants import Variant, apply, load_ablations

    base = RunConfig(seeds=REPO / "seeds" / "175.jsonl", target=30).resolved()
    alpaca = apply(Variant(name="a", set={"profile": "alpaca"}), base)
    assert alpaca.propose_params == ALPACA.propose and alpaca.seeds_in_prompt == 3
    assert alpaca.classify_params is None and alpaca.instance_filters == ALPACA.instance_filters
    magpie = apply(Variant(name="m", set={"profile": "magpie"}), base)
    assert (
        magpie.instruction_filters == MAGPIE.instruction_filters
        and magpie.instance_params == MAGPIE.instances
    )
    # a variant that keeps the profile keeps the base's settings as they are
    same = apply(Variant(name="s", set={"personas": str(SHIPPED)}), base)
    assert same.propose_params == base.propose_params and same.personas == SHIPPED
    sources = load_ablations(REPO / "ablations" / "sources.yaml")
    assert [v.name for v in sources.variants] == ["baseline", "alpaca", "magpie", "self-instruct-personas"]
    for variant in sources.variants:
        apply(variant, base)  # each validates
    # a variant may switch profile and switch one of the new profile's filters off
    no_answer_filter = apply(Variant(name="m2", set={"profile": "magpie"}, without=["query_is_answer"]), base)
    assert [f.name for f in no_answer_filter.instruction_filters or []] == [
        f.name for f in MAGPIE.instruction_filters if f.name != "query_is_answer"
    ]


def test_magpie_queries_evolve_like_any_others(ray_session: None, tmp_path: Path):
    jinja = tmp_path / "t.jinja"
    jinja.write_text(SMOLLM)
    cfg = RunConfig(
        profile="magpie",
        target=10,
        evolve_rounds=1,
        out=tmp_path / "e",
        chat_template=str(jinja),
        cache=False,
    )
    summary = run(cfg, teacher=ScriptedTeacher)
    assert summary["counts"]["evolved"] == 10 and summary["counts"]["evolve_kept"] > 0
    assert summary["counts"]["dataset_instructions"] == 10 + summary["counts"]["evolve_kept"]
