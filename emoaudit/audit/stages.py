"""The audit's stages, thin: each calls its package and returns what results.json records of it."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
from rich.progress import Progress

from emoaudit.analysis.sweep import analyse_method, at_layer, compare_at_layer, heldout_curves, smooth
from emoaudit.audit.context import Run
from emoaudit.audit.results.extraction import (
    EmotionLayer,
    Extraction,
    ExtractionTokens,
    MethodResults,
    TruncatedTexts,
)
from emoaudit.audit.results.leakage import Leakage
from emoaudit.audit.results.steering import JudgeInfo, Steering, SteeringScenario, SteeringTokens
from emoaudit.capture.activations import Activations
from emoaudit.capture.stimuli import (
    METHODS,
    comprehension_activations,
    generation_activations,
    generation_prompts,
    heldout_activations,
)
from emoaudit.leakage.assess import annotate, assess
from emoaudit.model.architectures import LAYER_CONVENTION
from emoaudit.model.runtime import chat_prompt_ids, read_limit, token_count, token_ids, truncated
from emoaudit.steering.calibration import calibrate
from emoaudit.steering.judge import validate
from emoaudit.steering.judge_models import load_judge
from emoaudit.steering.noise import measure_noise_floor
from emoaudit.steering.summary import summarise
from emoaudit.steering.trials import generate_trials, score_trials
from emoaudit.storage import write_text
from emoaudit.vectors import EmotionVectors, unit_deltas


def extraction_stage(run: Run) -> Extraction:
    """Activations by both methods and of the held-out sentences, vectors, the layer sweep and the emotion layer."""
    spec, profile, lm, seed = run.spec, run.profile, run.lm, run.seed

    def comprehension(progress: Progress) -> Activations:
        task = progress.add_task("reading passages", total=len(spec.labels) * profile.passages_per_label)
        return comprehension_activations(lm, spec, profile, lambda n: progress.advance(task, n))

    def generation(progress: Progress) -> Activations:
        total = len(generation_prompts(spec, profile)[0])
        task = progress.add_task(f"writing stories ({profile.max_new_tokens} tokens)", total=total)
        return generation_activations(lm, spec, profile, seed, lambda n: progress.advance(task, n))

    def heldout(progress: Progress) -> Activations:
        progress.add_task("reading held-out sentences", total=None)
        return heldout_activations(lm, spec)

    acts = {
        "comprehension": _activations(run, "comprehension", comprehension),
        "generation": _activations(run, "generation", generation),
    }
    held = _activations(run, "heldout", heldout)
    _write_stories(run.out / "stories.jsonl", acts["generation"])

    denoise = spec.analysis.denoise_variance
    vectors = {
        m: EmotionVectors.from_activations(acts[m], spec.emotion_names, spec.reference, denoise) for m in METHODS
    }
    with run.timed("analysis"), run.progress() as progress:
        task = progress.add_task("layer sweep", total=len(METHODS) * lm.stream.n_layers)
        sweeps = {
            m: analyse_method(acts[m], vectors[m], spec, profile, seed, lambda: progress.advance(task)) for m in METHODS
        }
    layer_method = spec.analysis.layer_method
    layer = sweeps[layer_method].chosen_layer
    n_layers = lm.stream.n_layers
    for method, vecs in vectors.items():
        vecs.emotion_layer = layer
        vecs.save(run.out / "vectors" / f"{method}.safetensors", lm.identity.to_dict(), spec.sha256)
    analyses: dict[str, MethodResults] = {}
    for m in METHODS:
        held_curves = heldout_curves(held, vectors[m], spec)
        analyses[m] = MethodResults(
            **vars(sweeps[m]),
            heldout=held_curves,
            at_emotion_layer=at_layer(acts[m], vectors[m], spec, layer, profile, seed),
        )
    score = sweeps[layer_method].score
    return Extraction(
        layer_convention=LAYER_CONVENTION,
        n_layers=n_layers,
        emotions=spec.emotion_names,
        emotion_layer=EmotionLayer(
            index=layer,
            relative_depth=layer / max(n_layers - 1, 1),
            method=layer_method,
            score=score,
            smoothed_score=smooth(np.array(score), spec.analysis.layer_smoothing).tolist(),
            rule=f"argmax over layers but the last of the {layer_method} method's "
            "log(Fisher ratio / its shuffled-label null mean), moving average of "
            f"{spec.analysis.layer_smoothing} layers",
        ),
        methods=analyses,
        comparison=compare_at_layer({m: a.at_emotion_layer for m, a in analyses.items()}, vectors, layer),
        vectors={m: f"vectors/{m}.safetensors" for m in METHODS},
        tokens=ExtractionTokens(
            comprehension_read=token_count(lm, acts["comprehension"].texts),
            generation_written=token_count(lm, acts["generation"].texts),
            heldout_read=token_count(lm, held.texts),
        ),
        # Read texts longer than the model's context (or than READ_MAX_TOKENS) are read up to it.
        truncated_texts=TruncatedTexts(
            comprehension=truncated(lm, acts["comprehension"].texts),
            heldout=truncated(lm, held.texts),
            max_tokens=read_limit(lm),
        ),
    )


def steering_stage(run: Run, extraction: Extraction) -> Steering:
    """Steer toward each emotion on a calibrated strength grid; judge, measure and classify every trial."""
    spec, lm, profile, config = run.spec, run.lm, run.profile, run.spec.steering
    layer = extraction.layer
    vectors = EmotionVectors.load(run.out / "vectors" / f"{config.method}.safetensors")
    emotions = spread(spec.emotion_names, profile.steering_emotions)
    scenarios = [
        sc
        for kind in dict.fromkeys(sc.kind for sc in spec.scenarios)
        for sc in [s for s in spec.scenarios if s.kind == kind][: profile.steering_scenarios_per_kind]
    ]
    prompts = [(sc.id, sc.kind, sc.prompt) for sc in scenarios]
    mean_norm = float(vectors.mean_norm[layer])
    directions = {e: vectors.direction(e, layer) for e in emotions}
    # Calibrated on up to six emotions spread over the set: the KL curve is a property of the layer and
    # of the vectors' size, and six already average out the differences between emotions.
    with run.timed("steering_calibration"):
        calibration = calibrate(
            lm,
            [chat_prompt_ids(lm, p) for *_, p in prompts],
            layer,
            torch.stack([directions[e] for e in spread(emotions, 6)]),
            mean_norm,
            config.calibration_kl,
            list(config.probe_strengths),
        )
    multipliers = list(config.multipliers)
    rows: list[tuple[int, str | None, float, float | None, torch.Tensor | None]] = [
        (i, None, 0.0, None, None) for i in range(len(prompts))
    ]
    for emotion in emotions:
        for multiplier in multipliers:
            strength = calibration.unit_strength * multiplier
            delta = unit_deltas(directions[emotion][None], [strength], mean_norm)[0]
            rows += [(i, emotion, strength, multiplier, delta) for i in range(len(prompts))]
    with run.timed("steering_generation"), run.progress() as progress:
        task = progress.add_task(f"steering ({len(rows)} continuations)", total=len(rows))
        trials = generate_trials(
            lm, prompts, rows, layer, profile.steering_tokens, run.seed, lambda n: progress.advance(task, n)
        )
    with run.timed("steering_judge"):
        judge = load_judge(run.options.judge or config.judge, spec.emotion_names, spec.reference, spec.judge_prototypes)
        validation = validate(judge, spec.heldout)
        scores = judge.scores([t.text for t in trials])
    thresholds = config.thresholds
    baseline_rows = [i for i, t in enumerate(trials) if t.emotion is None]
    steered_rows = [i for i, t in enumerate(trials) if t.emotion is not None]
    baselines = {trials[i].scenario: trials[i] for i in baseline_rows}
    tokenize = lambda text: token_ids(lm, text)  # noqa: E731
    for rows_of_kind in (baseline_rows, steered_rows):
        score_trials(
            [trials[i] for i in rows_of_kind], baselines, scores[rows_of_kind], judge.labels, thresholds, tokenize
        )
    write_text(run.out / "samples.jsonl", "".join(json.dumps(asdict(t), ensure_ascii=False) + "\n" for t in trials))
    with run.timed("steering_noise_floor"):
        base = {scenario: trial.judge or {} for scenario, trial in baselines.items()}
        noise = measure_noise_floor(
            lm, judge, scenarios, base, config.noise_draws, spec.generation, profile.steering_tokens, run.seed,
            thresholds.judge_margin, run.out / "noise.jsonl",
        )  # fmt: skip
    return Steering(
        method=config.method,
        layer=layer,
        mean_norm=mean_norm,
        emotions=emotions,
        scenarios=[SteeringScenario(sc.id, sc.kind, sc.prompt) for sc in scenarios],
        calibration=calibration,
        multipliers=multipliers,
        strengths=[calibration.unit_strength * m for m in multipliers],
        max_new_tokens=profile.steering_tokens,
        decoding="greedy",
        thresholds=thresholds,
        judge=JudgeInfo(
            name=judge.name,
            kind=judge.kind,
            validation=validation,
            validation_set="held-out sentences (audits), never used for the judge's prototypes",
            noise_floor=noise,
        ),
        summary=summarise(trials, emotions, multipliers),
        samples="samples.jsonl",
        tokens=SteeringTokens(generated=sum(t.tokens for t in trials)),
    )


def leakage_stage(run: Run, steering: Steering) -> Leakage:
    """Foreign scripts in the steered outputs and in the logit lens, against the unsteered baseline."""
    samples_path = run.out / "samples.jsonl"
    samples = [json.loads(line) for line in samples_path.read_text(encoding="utf-8").splitlines()]
    config = run.spec.leakage
    annotate(samples, config, run.seed)
    write_text(samples_path, "".join(json.dumps(s, ensure_ascii=False) + "\n" for s in samples))
    vectors = EmotionVectors.load(run.out / "vectors" / f"{steering.method}.safetensors")
    return assess(run.lm, samples, steering, vectors, config)


def spread(items: list[str], n: int) -> list[str]:
    """`n` items spread evenly over the list (all of them when n covers it)."""
    if n >= len(items):
        return list(items)
    return [items[round(i * len(items) / n)] for i in range(n)]


def _activations(run: Run, name: str, compute: Callable[[Progress], Activations]) -> Activations:
    """A method's activations, from OUT/activations when an earlier run read them."""
    path = run.out / "activations" / f"{name}.safetensors"
    if path.is_file():
        return Activations.load(path)
    with run.timed(f"{name}_activations"), run.progress() as progress:
        acts = compute(progress)
    acts.save(path)
    return acts


def _write_stories(path: Path, acts: Activations) -> None:
    prompts = acts.prompts or [""] * len(acts.texts)
    lines = [
        json.dumps({"label": lab, "prompt": p, "text": t}, ensure_ascii=False)
        for lab, p, t in zip(acts.labels, prompts, acts.texts, strict=True)
    ]
    write_text(path, "\n".join(lines) + "\n")
