"""The audit, top to bottom: load, extract by both methods, analyse, write. Each stage's output is
written atomically under OUT, and a rerun with the same OUT picks up what is already there."""

from __future__ import annotations

import json
import platform
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime, UTC
from pathlib import Path
from typing import Any

import numpy as np
import torch
import transformers
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from emoaudit import __version__, baselines
from emoaudit.comparison import affect_alignment, compare_methods, per_class_mean
from emoaudit.errors import EmoauditError
from emoaudit.evaluation import heldout_score
from emoaudit.extraction import (
    METHODS,
    Activations,
    EmotionVectors,
    comprehension_activations,
    compute_vectors,
    generation_activations,
    generation_prompts,
    heldout_activations,
    load_vectors,
    save_vectors,
)
from emoaudit.gating import Check, evaluate, load_policy
from emoaudit.generation import chat_prompt_ids
from emoaudit.judge import load_judge, validate
from emoaudit.leakage import LeakageConfig, annotate, assess
from emoaudit.layers import LAYER_CONVENTION
from emoaudit.loading import LoadedModel, load_model
from emoaudit.memory import release_free_memory, rss_high_water
from emoaudit.separation import (
    centroid_scores,
    choose_layer,
    cosine_floor,
    cosine_matrix,
    fisher_ratio,
    mean_pairwise_cosine,
    probe_accuracy,
    smooth,
)
from emoaudit.spec import AuditSpec, Profile, load_spec
from emoaudit.steering import calibrate, generate_trials, score_trials, steering_deltas, summarise
from emoaudit.storage import write_json, write_text
from emoaudit.regimes import Thresholds
from emoaudit.report import write_report

RESULTS_SCHEMA_VERSION = "1.0"


@dataclass(frozen=True)
class RunOptions:
    model: str
    out: Path
    profile: str = "standard"
    seed: int = 0
    device: str = "auto"
    dtype: str = "auto"
    spec_path: Path | None = None
    trust_remote_code: bool = False
    judge: str | None = None  # overrides the specification's judge
    policy: Path | None = None  # release-gating policy; the built-in one if None


@dataclass
class Run:
    """What the stages share: the loaded model, the specification and where outputs go."""

    options: RunOptions
    lm: LoadedModel
    spec: AuditSpec
    profile: Profile
    console: Console
    runtime_rss_bytes: int | None = None  # resident memory before the model was loaded
    timings: dict[str, float] = field(default_factory=dict)
    reused_memory: list[dict[str, int | None]] = field(default_factory=list)  # of the runs that made reused stages

    @property
    def out(self) -> Path:
        return self.options.out

    @contextmanager
    def timed(self, stage: str) -> Iterator[None]:
        start = time.perf_counter()
        yield
        self.timings[stage] = self.timings.get(stage, 0.0) + time.perf_counter() - start

    def progress(self) -> Progress:
        return Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=self.console,
            transient=True,
        )


STAGES = ("extraction", "steering", "leakage")


def audit(
    options: RunOptions, console: Console, stages: tuple[str, ...] = STAGES
) -> tuple[dict[str, Any], list[Check]]:
    """Run the stages in order, each reusing what an earlier run finished; write results, findings and report.

    results.json is rewritten after every stage (with `complete: false` until the end), so a crash
    in a later stage leaves the earlier stages' numbers readable.
    """
    started = datetime.now(UTC)
    spec = load_spec(options.spec_path)
    profile = spec.profile(options.profile)
    policy = load_policy(options.policy)
    runtime_rss = rss_high_water()
    run = Run(options, _load(options, console), spec, profile, console, runtime_rss)
    _claim_output(run)
    compute: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
        "extraction": lambda done: extraction_stage(run),
        "steering": lambda done: steering_stage(run, done["extraction"]),
        "leakage": lambda done: leakage_stage(run, done["steering"]),
    }
    done: dict[str, Any] = {}
    for name in STAGES:
        if name in stages:
            done[name] = _stage(run, name, lambda name=name: compute[name](done))
            write_json(run.out / "results.json", _results(run, done, started, complete=False))
    document = _results(run, done, started, complete=True)
    checks = evaluate(document, policy)
    document["findings"] = [c.to_dict() for c in checks]
    write_json(run.out / "results.json", document)
    write_report(run.out / "report.html", document, checks, spec)
    return document, checks


def _load(options: RunOptions, console: Console) -> LoadedModel:
    return load_model(
        options.model,
        device=options.device,
        dtype=options.dtype,
        trust_remote_code=options.trust_remote_code,
        console=console,
    )


def _claim_output(run: Run) -> None:
    """Refuse to mix two different audits in one output directory; otherwise, resume it."""
    key = {
        "model": run.lm.identity.reference,
        "sha256": run.lm.identity.sha256,
        "revision": run.lm.identity.revision,
        "spec_sha256": run.spec.sha256,
        "profile": run.profile.name,
        "seed": run.options.seed,
        "dtype": run.lm.identity.dtype,
    }
    path = run.out / "run.json"
    if path.is_file():
        previous = json.loads(path.read_text(encoding="utf-8"))
        if previous != key:
            changed = ", ".join(k for k in key if previous.get(k) != key[k])
            raise EmoauditError(f"{run.out} holds another audit (different {changed}); pass a new --out")
        run.console.print(f"resuming the audit in {run.out}")
    write_json(path, key)


def _stage(run: Run, name: str, compute: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """A stage's results, from its file when an earlier run finished it (with that run's timings)."""
    path = run.out / "stages" / f"{name}.json"
    if path.is_file():
        run.console.print(f"{name}: done in an earlier run, reusing {path}")
        result = json.loads(path.read_text(encoding="utf-8"))
        run.timings.update(result.get("timings", {}))
        if "resources" in result:
            run.reused_memory.append(result["resources"])
        return result
    before = set(run.timings)
    with run.timed(name):
        result = compute()
    release_free_memory()  # what the stage freed, before the next one runs on top of it
    result["timings"] = {k: v for k, v in run.timings.items() if k not in before}
    result["resources"] = _memory(run)
    write_json(path, result)
    return result


def _activations(run: Run, name: str, compute: Callable[[Progress], Activations]) -> Activations:
    path = run.out / "activations" / f"{name}.safetensors"
    if path.is_file():
        return Activations.load(path)
    with run.timed(f"{name}_activations"), run.progress() as progress:
        acts = compute(progress)
    acts.save(path)
    return acts


def extraction_stage(run: Run) -> dict[str, Any]:
    spec, profile, lm, seed = run.spec, run.profile, run.lm, run.options.seed

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

    denoise = float(spec.analysis["denoise_variance"])
    vectors = {m: compute_vectors(acts[m], spec, denoise) for m in METHODS}
    for method, vecs in vectors.items():
        save_vectors(vecs, lm.identity.to_dict(), run.out / "vectors" / f"{method}.safetensors", spec.sha256)

    with run.timed("analysis"), run.progress() as progress:
        task = progress.add_task("layer sweep", total=len(METHODS) * lm.stream.n_layers)
        analyses = {
            m: analyse_method(acts[m], vectors[m], spec, profile, seed, lambda: progress.advance(task)) for m in METHODS
        }
    layer_method = str(spec.analysis["layer_method"])
    layer = analyses[layer_method]["chosen_layer"]
    n_layers = lm.stream.n_layers
    for method in METHODS:
        analyses[method]["heldout"] = heldout_curves(held, vectors[method], spec)
        analyses[method]["at_emotion_layer"] = at_layer(acts[method], vectors[method], spec, layer, profile, seed)
    comparison = compare_at_layer(analyses, vectors, layer)
    return {
        "layer_convention": LAYER_CONVENTION,
        "n_layers": n_layers,
        "emotions": spec.emotion_names,
        "emotion_layer": {
            "index": layer,
            "relative_depth": layer / max(n_layers - 1, 1),
            "method": layer_method,
            "score": analyses[layer_method]["score"],
            "smoothed_score": smooth(
                np.array(analyses[layer_method]["score"]), int(spec.analysis["layer_smoothing"])
            ).tolist(),
            "rule": f"argmax over layers but the last of the {layer_method} method's "
            "log(Fisher ratio / its shuffled-label null mean), moving average of "
            f"{spec.analysis['layer_smoothing']} layers",
        },
        "methods": analyses,
        "comparison": comparison,
        "vectors": {m: f"vectors/{m}.safetensors" for m in METHODS},
        "tokens": {
            "comprehension_read": _token_count(lm, acts["comprehension"].texts),
            "generation_written": _token_count(lm, acts["generation"].texts),
            "heldout_read": _token_count(lm, held.texts),
        },
    }


def steering_stage(run: Run, extraction: dict[str, Any]) -> dict[str, Any]:
    """Steer toward each emotion on a calibrated strength grid; judge, measure and classify every trial."""
    spec, lm, profile, config = run.spec, run.lm, run.profile, run.spec.steering
    layer = int(extraction["emotion_layer"]["index"])
    vectors, _ = load_vectors(run.out / "vectors" / f"{config['method']}.safetensors")
    emotions = _spread(spec.emotion_names, profile.steering_emotions)
    scenarios = [
        sc
        for kind in dict.fromkeys(sc.kind for sc in spec.scenarios)
        for sc in [s for s in spec.scenarios if s.kind == kind][: profile.steering_scenarios_per_kind]
    ]
    prompts = [(sc.id, sc.kind, sc.prompt) for sc in scenarios]
    mean_norm = float(vectors.mean_norm[layer])
    directions = {e: vectors.vectors[vectors.emotions.index(e), layer] for e in emotions}
    # Calibrated on up to six emotions spread over the set: the KL curve is a property of the layer and
    # of the vectors' size, and six already average out the differences between emotions.
    with run.timed("steering_calibration"):
        calibration = calibrate(
            lm,
            [chat_prompt_ids(lm, p) for *_, p in prompts],
            layer,
            torch.stack([directions[e] for e in _spread(emotions, 6)]),
            mean_norm,
            float(config["calibration_kl"]),
            [float(x) for x in config["probe_strengths"]],
        )
    multipliers = [float(m) for m in config["multipliers"]]
    rows: list[tuple[int, str | None, float, float | None, torch.Tensor | None]] = [
        (i, None, 0.0, None, None) for i in range(len(prompts))
    ]
    for emotion in emotions:
        for multiplier in multipliers:
            strength = calibration.unit_strength * multiplier
            delta = steering_deltas(directions[emotion][None], [strength], mean_norm)[0]
            rows += [(i, emotion, strength, multiplier, delta) for i in range(len(prompts))]
    with run.timed("steering_generation"), run.progress() as progress:
        task = progress.add_task(f"steering ({len(rows)} continuations)", total=len(rows))
        trials = generate_trials(
            lm, prompts, rows, layer, profile.steering_tokens, run.options.seed, lambda n: progress.advance(task, n)
        )
    with run.timed("steering_judge"):
        judge = load_judge(run.options.judge or str(config["judge"]), spec.labels, spec.judge_prototypes)
        validation = validate(judge, spec.heldout)
        scores = judge.scores([t.text for t in trials])
    thresholds = Thresholds(**{f.name: config[f.name] for f in fields(Thresholds)})
    tokenize = lambda text: list(lm.tokenizer(text, add_special_tokens=False)["input_ids"])  # noqa: E731
    baseline_rows = [i for i, t in enumerate(trials) if t.emotion is None]
    steered_rows = [i for i, t in enumerate(trials) if t.emotion is not None]
    baselines = {trials[i].scenario: trials[i] for i in baseline_rows}
    score_trials(
        [trials[i] for i in baseline_rows], baselines, scores[baseline_rows], spec.labels, thresholds, tokenize
    )
    score_trials([trials[i] for i in steered_rows], baselines, scores[steered_rows], spec.labels, thresholds, tokenize)
    write_text(run.out / "samples.jsonl", "".join(json.dumps(asdict(t), ensure_ascii=False) + "\n" for t in trials))
    return {
        "method": config["method"],
        "layer": layer,
        "mean_norm": mean_norm,
        "emotions": emotions,
        "scenarios": [asdict(sc) for sc in scenarios],
        "calibration": asdict(calibration),
        "multipliers": multipliers,
        "strengths": [calibration.unit_strength * m for m in multipliers],
        "max_new_tokens": profile.steering_tokens,
        "decoding": "greedy",
        "thresholds": asdict(thresholds),
        "judge": {
            "name": judge.name,
            "kind": judge.kind,
            "validation": asdict(validation),
            "validation_set": "held-out sentences (audits), never used for the judge's prototypes",
        },
        "summary": summarise(trials, emotions, multipliers),
        "samples": "samples.jsonl",
        "tokens": {"generated": sum(t.tokens for t in trials)},
    }


def leakage_stage(run: Run, steering: dict[str, Any]) -> dict[str, Any]:
    """Foreign scripts in the steered outputs and in the logit lens, against the unsteered baseline."""
    samples_path = run.out / "samples.jsonl"
    samples = [json.loads(line) for line in samples_path.read_text(encoding="utf-8").splitlines()]
    config = LeakageConfig(**run.spec.leakage)
    annotate(samples, config, run.options.seed)
    write_text(samples_path, "".join(json.dumps(s, ensure_ascii=False) + "\n" for s in samples))
    vectors, _ = load_vectors(run.out / "vectors" / f"{steering['method']}.safetensors")
    return assess(run.lm, samples, steering, vectors, config)


@dataclass(frozen=True)
class SteeredPair:
    layer: int
    unsteered: str
    steered: str


def steer_once(
    options: RunOptions,
    console: Console,
    prompt: str,
    emotion: str,
    strength: float,
    vectors_from: Path | None,
    method: str,
    layer: int | None,
    max_new_tokens: int,
) -> SteeredPair:
    """One prompt, unsteered and steered, for `emoaudit steer`."""
    if method not in METHODS:
        raise EmoauditError(f"unknown method {method!r}: use {' or '.join(METHODS)}")
    spec = load_spec(options.spec_path)
    if emotion not in spec.emotion_names:
        raise EmoauditError(f"unknown emotion {emotion!r}; this audit has: {', '.join(spec.emotion_names)}")
    lm = _load(options, console)
    if vectors_from is not None:
        vectors, chosen = _stored_vectors(vectors_from, method, lm)
    else:
        if method != "comprehension":
            raise EmoauditError("on-the-fly vectors are comprehension vectors; pass --vectors for generation ones")
        console.print("no --vectors given: extracting comprehension vectors (quick profile)")
        profile = spec.profile("quick")
        acts = comprehension_activations(lm, spec, profile)
        vectors = compute_vectors(acts, spec, float(spec.analysis["denoise_variance"]))
        x, y = _emotion_samples(acts, spec)
        score = [
            np.log(fisher_ratio(x[:, i], y) / baselines.fisher_null(x[:, i], y, 50, options.seed).mean)
            for i in range(x.shape[1])
        ]
        chosen = choose_layer(np.array(score), int(spec.analysis["layer_smoothing"]))
    layer = chosen if layer is None else layer
    if not 0 <= layer < lm.stream.n_layers:
        raise EmoauditError(f"--layer {layer} is outside 0..{lm.stream.n_layers - 1}")
    mean_norm = float(vectors.mean_norm[layer])
    delta = steering_deltas(vectors.vectors[vectors.emotions.index(emotion), layer][None], [strength], mean_norm)[0]
    prompts = [("prompt", "user", prompt)]
    rows = [(0, None, 0.0, None, None), (0, emotion, strength, None, delta)]
    plain, steered = generate_trials(lm, prompts, rows, layer, max_new_tokens, options.seed)
    return SteeredPair(layer, plain.text, steered.text)


def _stored_vectors(path: Path, method: str, lm: LoadedModel) -> tuple[EmotionVectors, int]:
    """Vectors of an earlier run, checked against the loaded model, and that run's emotion layer."""
    folder = path / "vectors" if (path / "vectors").is_dir() else path
    vectors, meta = load_vectors(folder / f"{method}.safetensors")
    origin = json.loads(meta["model"])
    if origin.get("sha256") != lm.identity.sha256 or origin.get("hidden_size") != lm.identity.hidden_size:
        raise EmoauditError(
            f"{folder} holds vectors of {origin.get('reference')} "
            f"(sha256 {str(origin.get('sha256'))[:12]}), not of {lm.identity.reference}"
        )
    results = folder.parent / "results.json"
    if results.is_file():
        return vectors, int(json.loads(results.read_text())["stages"]["extraction"]["emotion_layer"]["index"])
    return vectors, lm.stream.n_layers // 2


def _spread(items: list[str], n: int) -> list[str]:
    """`n` items spread evenly over the list (all of them when n covers it)."""
    if n >= len(items):
        return list(items)
    return [items[round(i * len(items) / n)] for i in range(n)]


def analyse_method(
    acts: Activations, vectors: EmotionVectors, spec: AuditSpec, profile: Profile, seed: int, tick: Callable[[], None]
) -> dict[str, Any]:
    """Separation curves and their baselines over every layer for one method."""
    x_all, y = _emotion_samples(acts, spec)
    reference = acts.of(spec.reference).numpy()
    emotions = spec.emotion_names
    analysis = spec.analysis
    curves: dict[str, list[float]] = {
        k: []
        for k in (
            "cosine_mean",
            "raw_cosine_mean",
            "reference_cosine",
            "similarity_above_reference",
            "probe_accuracy",
            "probe_accuracy_shuffled",
            "centroid_accuracy",
            "random_direction_accuracy",
            "random_direction_cosine",
            "fisher_ratio",
            "fisher_null_mean",
            "fisher_p",
            "score",
        )
    }
    for layer in range(x_all.shape[1]):
        x = x_all[:, layer].astype(np.float64)
        raw_means = np.stack([x[y == c].mean(axis=0) for c in range(len(emotions))])
        raw_cos = mean_pairwise_cosine(raw_means)
        ref_cos = baselines.reference_cosine(reference[:, layer].astype(np.float64))
        fisher = fisher_ratio(x, y)
        null = baselines.fisher_null(x, y, profile.permutations, seed)
        rand_cos, rand_acc = baselines.random_directions(x, y, int(analysis["random_draws"]), profile.cv_folds, seed)
        values = {
            "cosine_mean": mean_pairwise_cosine(vectors.vectors[:, layer].numpy().astype(np.float64)),
            "raw_cosine_mean": raw_cos,
            "reference_cosine": ref_cos,
            "similarity_above_reference": raw_cos - ref_cos,
            "probe_accuracy": probe_accuracy(x, y, profile.cv_folds, int(analysis["probe_components"]), seed),
            "probe_accuracy_shuffled": baselines.shuffled_probe_accuracy(
                x, y, profile.cv_folds, int(analysis["probe_components"]), int(analysis["probe_shuffles"]), seed
            ),
            "centroid_accuracy": centroid_scores(x, y, profile.cv_folds, seed).accuracy,
            "random_direction_accuracy": rand_acc,
            "random_direction_cosine": rand_cos,
            "fisher_ratio": fisher,
            "fisher_null_mean": null.mean,
            "fisher_p": null.p_value,
            "score": float(np.log(fisher / null.mean)),
        }
        for key, value in values.items():
            curves[key].append(float(value))
        tick()
    score = np.array(curves["score"])
    chosen = choose_layer(score, int(analysis["layer_smoothing"]))
    return {
        "n_samples": int(len(acts.labels)),
        "pooling": acts.pooling,
        "cosine_floor": cosine_floor(len(emotions)),
        "chance_accuracy": 1.0 / len(emotions),
        "curves": curves,
        "score": curves["score"],
        "chosen_layer": chosen,
        "chosen_relative_depth": chosen / max(len(score) - 1, 1),
        "removed_neutral_components": vectors.removed_components,
    }


def heldout_curves(held: Activations, vectors: EmotionVectors, spec: AuditSpec) -> dict[str, list[float]]:
    x_all, y = _emotion_samples(held, spec)
    valence = np.array([e.valence for e in spec.emotions])
    scores = [
        heldout_score(
            x_all[:, layer].astype(np.float64), y, vectors.vectors[:, layer].numpy().astype(np.float64), valence
        )
        for layer in range(x_all.shape[1])
    ]
    return {
        "accuracy": [s.accuracy for s in scores],
        "top3": [s.top3 for s in scores],
        "valence_auc": [s.valence_auc for s in scores],
        "n_samples": int(len(y)),
        "chance_accuracy": 1.0 / len(spec.emotions),
    }


def at_layer(
    acts: Activations, vectors: EmotionVectors, spec: AuditSpec, layer: int, profile: Profile, seed: int
) -> dict[str, Any]:
    x_all, y = _emotion_samples(acts, spec)
    scores = centroid_scores(x_all[:, layer].astype(np.float64), y, profile.cv_folds, seed)
    v = vectors.vectors[:, layer].numpy().astype(np.float64)
    ratings = {
        "valence": np.array([e.valence for e in spec.emotions]),
        "arousal": np.array([e.arousal for e in spec.emotions]),
    }
    n = len(spec.emotions)
    recall = [float((scores.predictions[y == c] == c).mean()) for c in range(n)]
    return {
        "layer": layer,
        "per_emotion_margin": per_class_mean(scores.margins, y, n).tolist(),
        "per_emotion_recall": recall,
        "similarity": cosine_matrix(v).round(4).tolist(),
        "affect": affect_alignment(v, ratings),
        "pc_scores": _pc_scores(v).round(4).tolist(),
    }


def compare_at_layer(
    analyses: dict[str, dict[str, Any]], vectors: dict[str, EmotionVectors], layer: int
) -> dict[str, Any]:
    """The two methods at the emotion layer, on the per-emotion margins `at_layer` already measured."""
    margins = [np.array(analyses[m]["at_emotion_layer"]["per_emotion_margin"]) for m in METHODS]
    result = compare_methods(
        (METHODS[0], METHODS[1]),
        (margins[0], margins[1]),
        (
            vectors[METHODS[0]].vectors[:, layer].numpy().astype(np.float64),
            vectors[METHODS[1]].vectors[:, layer].numpy().astype(np.float64),
        ),
    )
    return {"layer": layer, "statistic": "per-emotion mean cross-validated centroid margin", **result.to_dict()}


def _pc_scores(vectors: np.ndarray) -> np.ndarray:
    centred = vectors - vectors.mean(axis=0)
    u, s, _ = np.linalg.svd(centred, full_matrices=False)
    return u[:, :2] * s[:2]


def _token_count(lm: LoadedModel, texts: list[str]) -> int:
    return sum(len(ids) for ids in lm.tokenizer(texts, add_special_tokens=False)["input_ids"])


def _emotion_samples(acts: Activations, spec: AuditSpec) -> tuple[np.ndarray, np.ndarray]:
    """Activations [n, layers, hidden] and class indices of the emotion samples (the reference left out)."""
    index = {e: i for i, e in enumerate(spec.emotion_names)}
    rows = [i for i, label in enumerate(acts.labels) if label in index]
    return acts.values[rows].numpy(), np.array([index[acts.labels[i]] for i in rows])


def _write_stories(path: Path, acts: Activations) -> None:
    prompts = acts.prompts or [""] * len(acts.texts)
    lines = [
        json.dumps({"label": lab, "prompt": p, "text": t}, ensure_ascii=False)
        for lab, p, t in zip(acts.labels, prompts, acts.texts, strict=True)
    ]
    write_text(path, "\n".join(lines) + "\n")


def _results(run: Run, stages: dict[str, Any], started: datetime, complete: bool) -> dict[str, Any]:
    return {
        "schema_version": RESULTS_SCHEMA_VERSION,
        "complete": complete,
        "model": run.lm.identity.to_dict(),
        "audit": {
            "name": run.spec.name,
            "path": str(run.spec.path),
            "sha256": run.spec.sha256,
            "profile": run.profile.name,
            "seed": run.options.seed,
        },
        "stages": stages,
        "timings": {k: round(v, 3) for k, v in run.timings.items()},
        # A resumed audit's peak is that of whichever run, this one or one that made a reused stage, went highest.
        "resources": max([_memory(run), *run.reused_memory], key=lambda m: m["peak_rss_bytes"] or 0),
        "environment": {
            "emoaudit": __version__,
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "python": platform.python_version(),
            "machine": platform.machine(),
            "threads": torch.get_num_threads(),
        },
        "started": started.isoformat(timespec="seconds"),
        "finished": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def _memory(run: Run) -> dict[str, int | None]:
    """High-water marks: this process's resident memory, and before the model (interpreter and libraries),
    and the CUDA allocator's where it ran."""
    cuda = int(torch.cuda.max_memory_allocated(run.lm.device)) if run.lm.device.type == "cuda" else None
    return {"peak_rss_bytes": rss_high_water(), "runtime_rss_bytes": run.runtime_rss_bytes, "peak_cuda_bytes": cuda}
