"""The parts of the domain stage that need no teacher: the registry, the config, the two filters."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from filters.verify import KeyDedup, Verify, verification_counts
from generator.config import ConfigError, load_config
from generator.domains import check_domain_seeds, domain_names, get_domain
from generator.records import Instance, Record, Verification
from generator.run import build_parser
from generator.seeds import SeedFileError, load_seeds
from generator.stages import plan
from generator.stages.domain import DomainStage
from generator.state import DomainState, SavedStats

REPO = Path(__file__).resolve().parents[2]


def item(i: int, answer: str = "4") -> Record:
    return Record(
        id=f"x{i}", instruction=f"What is {i} + 2?", origin="test", instances=[Instance(output=answer)]
    )


def test_domains_are_the_modules_that_define_one():
    assert domain_names() == [
        "arithmetic",
        "code",
        "medical",
    ]  # exact_math, code_checks, base: helpers, not domains
    assert get_domain("code").name == "code" and get_domain("arithmetic").verifier.method == "computed"
    with pytest.raises(KeyError, match="known: arithmetic, code, medical"):
        get_domain("chemistry")


def test_the_config_chooses_a_domain_by_name(tmp_path: Path):
    cfg = load_config(None, {"seeds": "seeds/arithmetic.jsonl", "domain": "arithmetic"})
    assert [s.name for s in plan(cfg)] == ["domain"]
    assert cfg.resolved().run_name == "arithmetic-seed42"
    unverified = load_config(
        None, {"seeds": "seeds/arithmetic.jsonl", "domain": "arithmetic", "verify": False}
    )
    assert unverified.resolved().run_name == "arithmetic-seed42-unverified"
    with pytest.raises(ConfigError, match="unknown domain 'chemistry'; known: arithmetic, code, medical"):
        load_config(None, {"seeds": "seeds/175.jsonl", "domain": "chemistry"})
    with pytest.raises(ConfigError, match="takes no --evolve-rounds"):
        load_config(None, {"seeds": "seeds/code.jsonl", "domain": "code", "evolve_rounds": 2})
    run_file = tmp_path / "run.yaml"
    run_file.write_text("seeds: seeds/code.jsonl\ndomain: code\nverify: false\nsandbox-timeout: 3\n")
    from_yaml = load_config(run_file, {})
    assert (from_yaml.domain, from_yaml.verify, from_yaml.sandbox_timeout) == ("code", False, 3.0)


def test_the_cli_flags_map_to_the_config():
    args = build_parser().parse_args(
        ["--domain", "code", "--seeds", "seeds/code.jsonl", "--no-verify", "--sandbox-timeout", "4"]
    )
    assert (args.domain, args.verify, args.sandbox_timeout) == ("code", False, 4.0)
    plain = build_parser().parse_args(["--seeds", "seeds/175.jsonl"])
    assert plain.domain is None and plain.verify is None  # None: the config's default (verify)
    help_text = build_parser().format_help()
    assert "--domain {arithmetic,code,medical}" in help_text and "--no-verify" in help_text


def test_a_seed_file_of_another_domain_is_refused():
    seeds = load_seeds(REPO / "seeds" / "code.jsonl")
    check_domain_seeds(Path("seeds/code.jsonl"), seeds, "code")
    with pytest.raises(SeedFileError, match="seed 'code_001' belongs to the code domain, not arithmetic"):
        check_domain_seeds(Path("seeds/code.jsonl"), seeds, "arithmetic")
    # a file with no domain field (the 175 seeds) is anyone's
    check_domain_seeds(Path("seeds/175.jsonl"), load_seeds(REPO / "seeds" / "175.jsonl"), "code")


class Says:
    """A verifier that passes answers equal to "4"; slower on even items, to shuffle finishing order."""

    method = "test"

    def __init__(self) -> None:
        self.threads: set[str] = set()

    def verify(self, item: Record) -> Verification:
        self.threads.add(threading.current_thread().name)
        if int(item.id[1:]) % 2 == 0:
            time.sleep(0.01)
        answer = item.instances[0].output
        if answer == "boom":
            raise RuntimeError("verifier bug")
        if answer == "?":
            return Verification(method="test", verdict="unverifiable", reason="no_answer")
        if answer != "4":
            return Verification(
                method="test", verdict="failed", reason="wrong_answer", details={"got": answer}
            )
        return Verification(method="test", verdict="verified")


def test_verify_drops_what_fails_and_records_every_verdict():
    items = [item(0), item(1, "5"), item(2, "?"), item(3), item(4, "boom"), item(5, "5")]
    verifier = Says()
    f = Verify(verifier, parallel=3)
    drops: list[tuple[str, str]] = []
    f.on_drop = lambda it, label, reason: drops.append((it.id, reason))
    kept = f.apply_batch(items)
    assert [r.id for r in kept] == ["x0", "x3"]
    assert drops == [
        ("x1", "wrong_answer"),
        ("x2", "no_answer"),
        ("x4", "verifier_error"),
        ("x5", "wrong_answer"),
    ]
    assert items[4].verification is not None and "verifier bug" in items[4].verification.details["error"]
    assert len(verifier.threads) > 1  # in parallel, and still in item order
    counts = verification_counts(dict(f.stats))
    assert counts == {
        "verified": 2,
        "repaired": 0,
        "failed": {"wrong_answer": 2},
        "unverifiable": {"no_answer": 1, "verifier_error": 1},
    }


def test_what_fails_but_can_be_repaired_is_kept_and_counted():
    items = [item(0), item(1, "5"), item(2, "?"), item(3, "6")]
    f = Verify(Says(), repairable=lambda r: r.instances[0].output != "6")
    assert [r.id for r in f.apply_batch(items)] == ["x0", "x1", "x2"]
    assert f.stats["repaired"] == 2 and f.stats["dropped_wrong_answer"] == 1
    assert items[1].verification is not None and items[1].verification.verdict == "failed"


def test_no_verify_keeps_everything_but_counts_the_same_verdicts():
    items = [item(0), item(1, "5"), item(2, "?")]
    f = Verify(Says(), keep_all=True)
    assert [r.id for r in f.apply_batch(items)] == ["x0", "x1", "x2"]
    assert [r.verification.verdict for r in items if r.verification] == ["verified", "failed", "unverifiable"]
    assert f.stats["dropped"] == 0 and f.stats["verdict_failed"] == 1


def test_key_dedup_drops_later_items_with_a_key_seen_before():
    f = KeyDedup(lambda r: r.instances[0].output if r.instances[0].output != "-" else None, seen={"7"})
    items = [item(0, "7"), item(1, "4"), item(2, "4"), item(3, "-"), item(4, "-")]
    assert [r.id for r in f.apply_batch(items)] == ["x1", "x3", "x4"]  # None: never a duplicate
    assert f.stats["dropped_duplicate"] == 2


def test_the_report_says_what_the_verifier_rejected():
    cfg = load_config(None, {"seeds": "seeds/arithmetic.jsonl", "domain": "arithmetic"}).resolved()
    stats = SavedStats(
        filters={
            "verify": {
                "verdict_verified": 5,
                "verdict_failed": 3,
                "failed_wrong_answer": 3,
                "unverifiable_no_answer": 1,
                "repaired": 3,
            }
        }
    )
    report = DomainStage(cfg).report(DomainState(round=2, stats=stats))
    assert report == {
        "name": "arithmetic",
        "verify": True,
        "method": "computed",
        "verification": {
            "verified": 5,
            "repaired": 3,
            "failed": {"wrong_answer": 3},
            "unverifiable": {"no_answer": 1},
        },
        "teacher_answers_rejected": 4,
        "dropped": 1,
    }
    assert DomainStage(cfg).report(None) is None
