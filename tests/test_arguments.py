"""Every option and API argument checked at the boundary (issue 27, class 7): the API raises EmoauditError
(ValueError for a wrong type) before any model work, and the CLI prints the same line with exit status 2."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

import emoaudit
from emoaudit.arguments import MAX_STRENGTH, check_stages, check_strength
from emoaudit.errors import EmoauditError
from emoaudit.pipeline.options import STAGES
from emoaudit.spec import load_spec
from emoaudit.vectors import EmotionVectors
from tests.conftest import run_cli
from tests.test_extraction import SPEC, fake_activations

TINY_SPEC_PATH = Path(__file__).parent / "data" / "tiny-audit.toml"


def _vectors() -> EmotionVectors:
    return EmotionVectors.from_activations(fake_activations(n_layers=4), SPEC.emotion_names, SPEC.reference, 0.0)


@pytest.mark.parametrize("strength", [math.nan, math.inf, -math.inf, 1e30, -(MAX_STRENGTH + 1)])
def test_steer_refuses_a_strength_that_is_not_finite_or_past_the_limit(strength: float) -> None:
    """Issue 27: steer(model, e, nan) produced NaN logits without an error. Refused before any hook: the
    model here is not even a language model."""
    message = "must be a finite number" if not math.isfinite(strength) else f"at most {MAX_STRENGTH:g} in magnitude"
    with pytest.raises(EmoauditError, match=message):
        with _vectors().steer(torch.nn.Linear(2, 2), SPEC.emotion_names[0], strength):
            pass


def test_steer_refuses_a_strength_that_is_not_a_number() -> None:
    with pytest.raises(ValueError, match="strength must be a number, not str"):
        check_strength("2")
    assert check_strength(-MAX_STRENGTH) == -MAX_STRENGTH and check_strength(3) == 3.0


@pytest.mark.parametrize("strength", ["1e30", "nan", "inf"])
def test_the_steer_command_refuses_it_in_one_line_before_loading(strength: str) -> None:
    """Issue 27: `steer --strength 1e30` exited 0 with an empty answer."""
    proc = run_cli("steer", "no-such-model-anywhere", "hi", "--emotion", "happy", "--strength", strength)
    assert proc.returncode == 2 and proc.stderr.startswith("emoaudit: error: --strength "), proc.stderr
    assert len(proc.stderr.splitlines()) == 1


@pytest.mark.parametrize("damage", ["truncated", "garbage", "stats"])
def test_loading_a_damaged_vector_file_is_one_clear_error(tmp_path: Path, damage: str) -> None:
    """Issue 27: EmotionVectors.load of a damaged file raised safetensors' SafetensorError."""
    path = tmp_path / "comprehension.safetensors"
    _vectors().chosen(1, {"reference": "tiny"}, SPEC.sha256).save(path)
    target = path.with_name("comprehension.stats.safetensors") if damage == "stats" else path
    data = target.read_bytes()
    target.write_bytes(data[: len(data) // 2] if damage != "garbage" else b"\xff" * 64)
    with pytest.raises(EmoauditError, match=r"is damaged or not a vector file emoaudit wrote: \w+"):
        EmotionVectors.load(path)
    proc = run_cli("export-vectors", str(tmp_path), "--emotion", "happy", "--out", str(tmp_path / "x.gguf"))
    assert proc.returncode == 2 and "is damaged or not a vector file emoaudit wrote" in proc.stderr, proc.stderr


@pytest.mark.parametrize(
    ("stages", "message"),
    [
        (("leakage",), "stage 'leakage' needs 'extraction' and 'steering' before it"),
        (("extraction", "leakage"), "stage 'leakage' needs 'steering' before it"),
        (("steering",), "stage 'steering' needs 'extraction' before it"),
        (("extraction", "lekage"), "unknown stage 'lekage'"),
        ((), "no stage to run"),
    ],
)
def test_audit_refuses_stages_without_the_ones_they_read_before_the_model_loads(
    stages: tuple[str, ...], message: str, tmp_path: Path
) -> None:
    """Issue 27: stages=("leakage",) raised KeyError: 'steering' after the model had loaded. The model here
    does not exist: the refusal comes first."""
    with pytest.raises(EmoauditError, match=message):
        emoaudit.audit(str(tmp_path / "no-such-model"), "tiny", tmp_path / "out", stages=stages)
    assert not (tmp_path / "out").exists()


def test_stage_and_seed_types_are_value_errors() -> None:
    with pytest.raises(ValueError, match="stages must be a sequence of stage names, not str"):
        check_stages("extraction", STAGES)
    with pytest.raises(ValueError, match="stages must be a sequence of stage names, not str"):
        emoaudit.audit("x", stages="extraction")  # a bare string is not spelled out into stages
    with pytest.raises(ValueError, match="seed must be an integer, not str"):
        emoaudit.audit("x", seed="1")  # type: ignore[arg-type]
    assert check_stages(["steering", "extraction"], STAGES) == ("extraction", "steering")


def test_steer_without_vectors_uses_a_specification_with_only_its_own_profile(
    tiny_dir: Callable[[str], Path], tmp_path: Path
) -> None:
    """Issue 27: `steer --spec S` without --vectors, S defining only its own profile, was refused ("unknown
    profile 'quick'"), and steer had no --profile."""
    assert list(load_spec(TINY_SPEC_PATH).profiles) == ["tiny"]
    emotion = load_spec(TINY_SPEC_PATH).emotion_names[0]
    common = ["--emotion", emotion, "--strength", "1", "--spec", str(TINY_SPEC_PATH), "--max-new-tokens", "3"]
    common += ["--device", "cpu", "--dtype", "float32"]
    proc = run_cli("steer", str(tiny_dir("llama")), "The sea was", *common)
    assert proc.returncode == 0 and "(tiny profile)" in proc.stderr, proc.stderr
    named = run_cli("steer", str(tiny_dir("llama")), "The sea was", *common, "--profile", "tiny")
    assert named.returncode == 0, named.stderr
    unknown = run_cli("steer", str(tiny_dir("llama")), "The sea was", *common, "--profile", "quick")
    assert unknown.returncode == 2 and "unknown profile 'quick'; this audit defines: tiny" in unknown.stderr
