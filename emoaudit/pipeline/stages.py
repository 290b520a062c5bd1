"""The audit's stages, thin: each calls its package and returns what results.json records of it."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict

import torch
from emoaudit.analysis import confounds
from emoaudit.analysis.confounds import (
    READINGS,
    choose_reading,
    embedding_baseline,
    keyword_free,
    scorable_heldout,
    story_keywords,
)
from emoaudit.analysis.sweep import analyse_method, at_layer, choose_layer, compare_at_layer, heldout_curves
from emoaudit.analysis.sweep import layer_rule, smooth
from emoaudit.pipeline.context import Run
from emoaudit.progress import Advance
from emoaudit.results.extraction import (
    EmotionLayer,
    Extraction,
    ExtractionTokens,
    HeldoutCurves,
    MethodResults,
    TruncatedTexts,
)
from emoaudit.results.leakage import Leakage
from emoaudit.results.steering import Controls, JudgeInfo, Steering, SteeringScenario, SteeringTokens
from emoaudit.capture.activations import Activations
from emoaudit.capture.stimuli import (
    METHODS,
    comprehension_activations,
    generation_activations,
    generation_prompts,
    heldout_activations,
    heldout_set_activations,
    heldout_set_rows,
    read_stories,
    reread_activations,
    write_stories,
)
from emoaudit.leakage.assess import annotate, assess
from emoaudit.model.architectures import LAYER_CONVENTION
from emoaudit.model.runtime import chat_prompt_ids, read_limit, token_count, token_ids, truncated
from emoaudit.steering.calibration import calibrate
from emoaudit.steering.judge import scores_in_parts, validate
from emoaudit.steering.judge_models import load_judge
from emoaudit.steering.noise import measure_noise_floor, noise_steps
from emoaudit.steering.summary import summarise
from emoaudit.steering.specificity import random_directions
from emoaudit.steering.trials import generate_trials, plan_rows, score_trials, spread
from emoaudit.storage import write_text
from emoaudit.vectors import EmotionVectors


def extraction_stage(run: Run) -> Extraction:
    """Activations by both methods and of the held-out sentences, vectors, the layer sweep and the emotion layer.

    The stories are read twice: while written, and again as plain text without the prompt that named
    the emotion; the variant whose vectors generalise better to the held-out sentences is the
    generation method's (`GenerationVariants`)."""
    spec, profile, lm, seed = run.spec, run.profile, run.lm, run.seed

    passages, stories = len(spec.labels) * profile.passages_per_label, len(generation_prompts(spec, profile)[0])
    writing = f"writing stories ({profile.max_new_tokens} tokens)"
    acts = {
        "comprehension": _activations(run, "comprehension", ("reading passages", passages, "passages"),
                                      lambda a: comprehension_activations(lm, spec, profile, a)),
        "generation": _activations(run, "generation", (writing, stories, "stories"),
                                   lambda a: generation_activations(lm, spec, profile, seed, a)),
    }  # fmt: skip
    held_total = sum(len(spec.heldout[label]) for label in spec.labels)
    held = _activations(run, "heldout", ("reading held-out sentences", held_total, "sentences"),
                        lambda a: heldout_activations(lm, spec, a))  # fmt: skip
    write_stories(run.out / "stories.jsonl", acts["generation"])
    reread = _activations(run, "generation_reread", ("reading the stories again", stories, "stories"),
                          lambda a: reread_activations(lm, spec, acts["generation"], a))  # fmt: skip
    set_names = heldout_set_rows(spec)[0]
    sets_line = ("reading the held-out sets", len(set_names), "sentences")
    held_sets = (
        _activations(run, "heldout_sets", sets_line, lambda a: heldout_set_activations(lm, spec, a))
        if set_names
        else None
    )
    variant_acts = {"writing": acts["generation"], "reread": reread}

    denoise = spec.analysis.denoise_variance
    read = {"comprehension": acts["comprehension"], **variant_acts}
    vectors = {
        m: EmotionVectors.from_activations(a, spec.emotion_names, spec.reference, denoise) for m, a in read.items()
    }
    with run.timed("analysis"), run.stage("layer sweep", len(read) * lm.stream.n_layers, "layers") as advance:
        sweeps = {m: analyse_method(a, vectors[m], spec, profile, seed, lambda: advance(1)) for m, a in read.items()}
    layer_method = spec.analysis.layer_method
    # a generation layer is the one read while written, as before the stories were read again
    layer_sweep = sweeps["writing" if layer_method == "generation" else layer_method]
    layer = choose_layer(layer_sweep.score, spec.analysis.layer_smoothing)
    n_layers = lm.stream.n_layers

    def held_scores(vecs: EmotionVectors) -> tuple[HeldoutCurves, HeldoutCurves | None, dict[str, HeldoutCurves]]:
        free = scorable_heldout(keyword_free(held, spec), vecs, spec)
        by_set = confounds.heldout_sets(held_sets, set_names, vecs, spec) if held_sets is not None else {}
        return heldout_curves(held, vecs, spec), free, by_set

    scored = {m: held_scores(v) for m, v in vectors.items()}
    at_layer_by_set = {
        m: {
            "heldout": h.accuracy[layer],
            **({"keyword_free": free.accuracy[layer]} if free else {}),
            **{name: c.accuracy[layer] for name, c in by_set.items()},
        }
        for m, (h, free, by_set) in scored.items()
    }
    variants = choose_reading(sweeps, {v: scored[v][0] for v in variant_acts}, at_layer_by_set)
    exported = variants.exported
    acts["generation"] = variant_acts[exported]
    vectors["generation"], sweeps["generation"], scored["generation"] = (
        vectors[exported],
        sweeps[exported],
        scored[exported],
    )
    for method in METHODS:
        # a new object, with the layer the audit chose: nothing reads vectors whose layer changes under it
        reading = READINGS[exported] if method == "generation" else None
        vectors[method] = vecs = vectors[method].chosen(layer, lm.identity.to_dict(), spec.sha256, reading)
        vecs.save(run.out / "vectors" / f"{method}.safetensors")
    # the stories' embeddings do not depend on how the stories are read: both variants share the reread's
    embedded = {"comprehension": acts["comprehension"], "generation": reread}
    analyses: dict[str, MethodResults] = {}
    for m in METHODS:
        held_curves, free, by_set = scored[m]
        analyses[m] = MethodResults(
            **vars(sweeps[m]),
            heldout=held_curves,
            at_emotion_layer=at_layer(acts[m], vectors[m], spec, layer, profile, seed),
            embedding=embedding_baseline(embedded[m], held, spec, profile, seed, sweeps[m].score[layer]),
            heldout_keyword_free=free,
            heldout_sets=by_set or None,
        )
    score = layer_sweep.score
    return Extraction(
        layer_convention=LAYER_CONVENTION,
        n_layers=n_layers,
        emotions=spec.emotion_names,
        emotion_layer=EmotionLayer(
            index=layer,
            relative_depth=layer / max(n_layers - 1, 1),
            method=layer_method,
            score=score,
            smoothed_score=smooth(score, spec.analysis.layer_smoothing),
            rule=layer_rule(layer_method, spec.analysis.layer_smoothing),
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
        generation_variants=variants,
        story_keywords=story_keywords(variant_acts["writing"], spec),
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
    probes = list(config.probe_strengths)
    with run.timed("steering_calibration"), run.stage("calibrating strength", len(probes) + 1, "passes") as advance:
        calibration = calibrate(
            lm,
            [chat_prompt_ids(lm, p) for *_, p in prompts],
            layer,
            torch.stack([directions[e] for e in spread(emotions, 6)]),
            mean_norm,
            config.calibration_kl,
            probes,
            advance,
        )
    multipliers = list(config.multipliers)
    controls = random_directions(config.control_directions, lm.identity.hidden_size, run.seed)
    rows = plan_rows(len(prompts), directions, controls, multipliers, calibration.unit_strength, mean_norm)
    positions = run.options.steer_positions
    with run.timed("steering_generation"), run.stage("steering", len(rows), "continuations") as advance:
        trials = generate_trials(lm, prompts, rows, layer, profile.steering_tokens, run.seed, advance, positions)
    with run.timed("steering_judge"):
        with run.stage("loading the judge", 1) as advance:
            choice = run.options.judge or config.judge
            judge = load_judge(choice, spec.emotion_names, spec.reference, spec.judge_prototypes)
            advance(1)
        validating = sum(len(spec.heldout.get(label, ())) for label in judge.labels)
        with run.stage("judging", validating + len(trials), "texts") as advance:
            validation = validate(judge, spec.heldout, advance)
            scores = scores_in_parts(judge, [t.text for t in trials], advance)
        # how often the judge finds the intended emotion in the model's own stories (the generation method's input)
        on_stories = validate(judge, read_stories(run.out / "stories.jsonl", spec.emotion_names))
    thresholds = config.thresholds
    judged = [label for label in judge.labels if label in spec.emotion_names]
    tokenize = lambda text: token_ids(lm, text)  # noqa: E731
    null = score_trials(trials, scores, judge.labels, judged, thresholds, tokenize)
    write_text(run.out / "samples.jsonl", "".join(json.dumps(asdict(t), ensure_ascii=False) + "\n" for t in trials))
    steps = noise_steps(lm, scenarios, config.noise_draws, profile.steering_tokens)
    with run.timed("steering_noise_floor"), run.stage("judge's noise floor", steps, "steps") as advance:
        base = {t.scenario: t.judge or {} for t in trials if t.emotion is None and t.control is None}
        noise = measure_noise_floor(
            lm, judge, scenarios, base, config.noise_draws, spec.generation, profile.steering_tokens, run.seed,
            thresholds.judge_margin, run.out / "noise.jsonl", advance,
        )  # fmt: skip
    return Steering(
        method=config.method,
        layer=layer,
        mean_norm=mean_norm,
        emotions=emotions,
        scenarios=[SteeringScenario(sc.id, sc.kind, sc.prompt) for sc in scenarios],
        calibration=calibration,
        multipliers=multipliers,
        steer_positions=positions,
        controls=Controls(
            kind="random",
            directions=config.control_directions,
            seed=run.seed,
            trials=sum(t.control is not None for t in trials),
            percentile=thresholds.control_percentile,
            top_k=thresholds.top_k,
            thresholds=null,
        ),
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
            stories=on_stories,
        ),
        summary=summarise(trials, emotions, multipliers, judged, null, thresholds),
        samples="samples.jsonl",
        tokens=SteeringTokens(generated=sum(t.tokens for t in trials)),
    )


def leakage_stage(run: Run, steering: Steering) -> Leakage:
    """Foreign scripts in the steered outputs and in the logit lens, against the unsteered baseline, and the
    emotions' own words in other languages in the lens (semantic entanglement)."""
    samples_path = run.out / "samples.jsonl"
    samples = [json.loads(line) for line in samples_path.read_text(encoding="utf-8").splitlines()]
    config = run.spec.leakage
    with run.stage("detecting languages", len(samples), "outputs") as advance:
        annotate(samples, config, run.seed, advance)
    write_text(samples_path, "".join(json.dumps(s, ensure_ascii=False) + "\n" for s in samples))
    vectors = EmotionVectors.load(run.out / "vectors" / f"{steering.method}.safetensors")
    with run.stage("logit lens", len(steering.emotions) + 1, "emotions") as advance:
        return assess(run.lm, samples, steering, vectors, config, run.spec.translations, advance)


def _activations(
    run: Run, name: str, line: tuple[str, int, str], compute: Callable[[Advance], Activations]
) -> Activations:
    """A method's activations, from OUT/activations when an earlier run read them; `line` is the progress
    line's (description, total, unit)."""
    path = run.out / "activations" / f"{name}.safetensors"
    if path.is_file():
        return Activations.load(path)
    with run.timed(f"{name}_activations"), run.stage(*line) as advance:
        acts = compute(advance)
    acts.save(path)
    run.kept(f"{name} activations")
    return acts
