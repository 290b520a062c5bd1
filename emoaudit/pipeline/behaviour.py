"""The behaviour stage, thin: the steering stage's layer, calibrated strength and vectors, the audit's judge."""

from __future__ import annotations

from emoaudit.behaviour.probes import Steer
from emoaudit.behaviour.stage import run_behaviour
from emoaudit.pipeline.context import Run
from emoaudit.results.behaviour import Behaviour
from emoaudit.results.steering import Steering
from emoaudit.spec import AuditSpec, Profile
from emoaudit.steering.judge_models import load_judge
from emoaudit.vectors import EmotionVectors


def runs_behaviour(spec: AuditSpec, profile: Profile) -> bool:
    """Whether the specification has behaviour probes and the profile asks for some."""
    return spec.behaviour is not None and profile.behaviour_items > 0 and profile.behaviour_emotions > 0


def behaviour_stage(run: Run, steering: Steering) -> Behaviour:
    """Steer the behaviour probes toward the emotions in scope at the steering stage's calibrated strengths."""
    spec, profile = run.spec, run.profile
    data, config, heldout = spec.behaviour, spec.behaviour_config, spec.behaviour_heldout
    assert data is not None and config is not None and heldout is not None  # runs_behaviour, and the spec's checks
    vectors = EmotionVectors.load(run.out / "vectors" / f"{steering.method}.safetensors")
    emotions = list(config.emotions[: profile.behaviour_emotions])
    steer = Steer(
        layer=steering.layer,
        unit_strength=steering.calibration.unit_strength,
        mean_norm=steering.mean_norm,
        multipliers=config.multipliers,
        directions={e: vectors.direction(e, steering.layer) for e in emotions},
        control_directions=config.control_directions,
        seed=run.seed,
        positions=run.options.steer_positions,
    )
    judge = load_judge(
        run.options.judge or spec.steering.judge, spec.emotion_names, spec.reference, spec.judge_prototypes
    )
    assert run.progress is not None
    return run_behaviour(
        run.lm, data, config, heldout, spec.refusal_reader, steer, profile.behaviour_items,
        profile.behaviour_tokens, judge, run.out / "behaviour.jsonl", run.progress, run.timed,
        profile.behaviour_judge_replies,
    )  # fmt: skip
