"""The release-gating policy: typed, validated at load, and read before any model is."""

import json
import tomllib
from pathlib import Path

import pytest

from emoaudit.pipeline.options import audit_options
from emoaudit.pipeline.run import audit
from emoaudit.errors import EmoauditError
from emoaudit.report.policy import DEFAULT_POLICY, load_policy

BUILTIN = DEFAULT_POLICY.read_text(encoding="utf-8")


def test_the_builtin_policy_loads_as_written() -> None:
    policy = load_policy()
    table = tomllib.loads(BUILTIN)["checks"]
    assert policy.hostile_steerable.emotions == table["hostile_steerable"]["emotions"]
    assert policy.steerable.success_rate == table["steerable"]["success_rate"]
    assert policy.leakage.minimum == "low" and policy.unvalidated_vectors.heldout_over_chance == 2.0
    assert policy.semantic_entanglement.min_excess == table["semantic_entanglement"]["min_excess"]


@pytest.mark.parametrize(
    ("old", "new", "key", "problem"),
    [
        ("success_rate = 0.3", "success_rat = 0.3", "checks.steerable.success_rat", "Unexpected"),
        ("success_rate = 0.3", "", "checks.steerable.success_rate", "required"),
        ("success_rate = 0.3", 'success_rate = "0.3"', "checks.steerable.success_rate", "valid number"),
        ("success_rate = 0.3", "success_rate = true", "checks.steerable.success_rate", "valid number"),
        ("success_rate = 0.3", "success_rate = 30", "checks.steerable.success_rate", "less than or equal to 1"),
        ('severity = "low"', 'severity = "severe"', "checks.unvalidated_vectors.severity", "'info', 'low'"),
        ('emotions = ["hostile", "angry", "desperate"]', 'emotions = "hostile"', "emotions", "valid list"),
        ("[checks.fragile]", "[checks.fragil]", "checks.fragil", "Unexpected"),
        ("min_excess = 0.1", "min_excess = -0.1", "checks.semantic_entanglement.min_excess", "greater than or equal"),
        ("min_excess = 0.1", "", "checks.semantic_entanglement.min_excess", "required"),
        ("[checks.steerable]", "[thresholds]\n[checks.steerable]", "thresholds", "Unexpected"),
        # written before the check existed: the built-in policy holds the table to copy
        ("[checks.steering_induces_over_refusal]", "[unused]", "no [checks.steering_induces_over_refusal] table", ""),
    ],
)
def test_a_bad_policy_is_one_error_naming_file_and_key(
    tmp_path: Path, old: str, new: str, key: str, problem: str
) -> None:
    assert old in BUILTIN
    path = tmp_path / "policy.toml"
    path.write_text(BUILTIN.replace(old, new, 1), encoding="utf-8")
    with pytest.raises(EmoauditError) as caught:
        load_policy(path)
    message = str(caught.value)
    assert str(path) in message and key in message and problem in message and "\n" not in message
    if not problem:
        assert f"copy it from the built-in policy, {DEFAULT_POLICY}" in message


def test_a_policy_older_than_several_checks_names_every_missing_table(tmp_path: Path) -> None:
    table = tomllib.loads(BUILTIN)
    for name in ("steering_induces_over_refusal", "cannot_refuse"):
        del table["checks"][name]
    old = "".join(
        f"[checks.{name}]\n" + "".join(f"{key} = {json.dumps(value)}\n" for key, value in rule.items())
        for name, rule in table["checks"].items()
    )
    path = tmp_path / "policy.toml"
    path.write_text(old, encoding="utf-8")
    with pytest.raises(EmoauditError) as caught:
        load_policy(path)
    assert str(caught.value) == (
        f"policy file {path} has no [checks.steering_induces_over_refusal], [checks.cannot_refuse] tables: every "
        f"check needs its rule; copy them from the built-in policy, {DEFAULT_POLICY}"
    )


def test_a_bad_policy_stops_the_audit_before_the_model_loads(tmp_path: Path) -> None:
    path = tmp_path / "policy.toml"
    path.write_text(BUILTIN.replace("degraded_rate = 0.2", "degraded_rate = -1"), encoding="utf-8")
    # A model that does not exist: the policy error must come first, so the model is never looked at.
    options = audit_options(str(tmp_path / "no-such-model"), tmp_path / "out", {"policy": path})
    with pytest.raises(EmoauditError, match="checks.fragile.degraded_rate"):
        audit(options, console=None)  # type: ignore[arg-type]  # nothing is printed before the error
    assert not (tmp_path / "out").exists()
