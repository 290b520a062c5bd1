"""The audit, top to bottom: load, extract by both methods, analyse, write. Each stage's output is
written atomically under OUT, and a rerun with the same OUT picks up what is already there."""

from __future__ import annotations

import json
import platform
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
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
    METHODS, Activations, EmotionVectors, comprehension_activations, compute_vectors,
    generation_activations, generation_prompts, heldout_activations, save_vectors,
)
from emoaudit.layers import LAYER_CONVENTION
from emoaudit.loading import LoadedModel, load_model
from emoaudit.separation import (
    centroid_scores, choose_layer, cosine_floor, cosine_matrix, fisher_ratio, mean_pairwise_cosine,
    probe_accuracy, smooth,
)
from emoaudit.spec import AuditSpec, Profile, load_spec
from emoaudit.storage import write_json, write_text

RESULTS_SCHEMA_VERSION = "0.1"


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


@dataclass
class Run:
    """What the stages share: the loaded model, the specification and where outputs go."""

    options: RunOptions
    lm: LoadedModel
    spec: AuditSpec
    profile: Profile
    console: Console
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def out(self) -> Path:
        return self.options.out

    @contextmanager
    def timed(self, stage: str) -> Iterator[None]:
        start = time.perf_counter()
        yield
        self.timings[stage] = self.timings.get(stage, 0.0) + time.perf_counter() - start

    def progress(self) -> Progress:
        return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                        console=self.console, transient=True)


def extract(options: RunOptions, console: Console) -> dict[str, Any]:
    """Run the extraction stage (load, both methods, analysis) and write results.json; returns the results."""
    started = datetime.now(timezone.utc)
    spec = load_spec(options.spec_path)
    profile = spec.profile(options.profile)
    run = Run(options, _load(options, console), spec, profile, console)
    _claim_output(run)
    stage = _stage(run, "extraction", lambda: extraction_stage(run))
    results = _results(run, {"extraction": stage}, started)
    write_json(run.out / "results.json", results)
    return results


def _load(options: RunOptions, console: Console) -> LoadedModel:
    return load_model(options.model, device=options.device, dtype=options.dtype,
                      trust_remote_code=options.trust_remote_code, console=console)


def _claim_output(run: Run) -> None:
    """Refuse to mix two different audits in one output directory; otherwise, resume it."""
    key = {"model": run.lm.identity.reference, "sha256": run.lm.identity.sha256,
           "revision": run.lm.identity.revision, "spec_sha256": run.spec.sha256,
           "profile": run.profile.name, "seed": run.options.seed, "dtype": run.lm.identity.dtype}
    path = run.out / "run.json"
    if path.is_file():
        previous = json.loads(path.read_text(encoding="utf-8"))
        if previous != key:
            changed = ", ".join(k for k in key if previous.get(k) != key[k])
            raise EmoauditError(f"{run.out} holds another audit (different {changed}); pass a new --out")
        run.console.print(f"resuming the audit in {run.out}")
    write_json(path, key)


def _stage(run: Run, name: str, compute: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """A stage's results, from its file when an earlier run finished it."""
    path = run.out / "stages" / f"{name}.json"
    if path.is_file():
        run.console.print(f"{name}: done in an earlier run, reusing {path}")
        return json.loads(path.read_text(encoding="utf-8"))
    with run.timed(name):
        result = compute()
    result["seconds"] = run.timings[name]
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

    acts = {"comprehension": _activations(run, "comprehension", comprehension),
            "generation": _activations(run, "generation", generation)}
    held = _activations(run, "heldout", heldout)
    _write_stories(run.out / "stories.jsonl", acts["generation"])

    denoise = float(spec.analysis["denoise_variance"])
    vectors = {m: compute_vectors(acts[m], spec, denoise) for m in METHODS}
    for method, vecs in vectors.items():
        save_vectors(vecs, lm.identity.to_dict(), run.out / "vectors" / f"{method}.safetensors", spec.sha256)

    with run.timed("analysis"), run.progress() as progress:
        task = progress.add_task("layer sweep", total=len(METHODS) * lm.stream.n_layers)
        analyses = {m: analyse_method(acts[m], vectors[m], spec, profile, seed, lambda: progress.advance(task))
                    for m in METHODS}
    width = int(spec.analysis["layer_smoothing"])
    combined = np.mean([smooth(np.array(a["score"]), width) for a in analyses.values()], axis=0)
    layer = int(np.argmax(combined))
    n_layers = lm.stream.n_layers
    for method in METHODS:
        analyses[method]["heldout"] = heldout_curves(held, vectors[method], spec)
        analyses[method]["at_emotion_layer"] = at_layer(acts[method], vectors[method], spec, layer, profile, seed)
    comparison = compare_at_layer(acts, vectors, spec, layer, profile, seed)
    return {
        "layer_convention": LAYER_CONVENTION,
        "n_layers": n_layers,
        "emotions": spec.emotion_names,
        "emotion_layer": {"index": layer, "relative_depth": layer / max(n_layers - 1, 1),
                          "score": combined.tolist(), "smoothing": width,
                          "rule": "argmax over layers of the mean, over both methods, of the smoothed "
                                  "log(Fisher ratio / its shuffled-label null mean)"},
        "methods": analyses,
        "comparison": comparison,
        "vectors": {m: f"vectors/{m}.safetensors" for m in METHODS},
    }


def analyse_method(acts: Activations, vectors: EmotionVectors, spec: AuditSpec, profile: Profile, seed: int,
                   tick: Callable[[], None]) -> dict[str, Any]:
    """Separation curves and their baselines over every layer for one method."""
    x_all, y = _emotion_samples(acts, spec)
    reference = acts.of(spec.reference).numpy()
    emotions = spec.emotion_names
    analysis = spec.analysis
    curves: dict[str, list[float]] = {k: [] for k in (
        "cosine_mean", "raw_cosine_mean", "reference_cosine", "similarity_above_reference",
        "probe_accuracy", "probe_accuracy_shuffled", "centroid_accuracy", "random_direction_accuracy",
        "random_direction_cosine", "fisher_ratio", "fisher_null_mean", "fisher_p", "score")}
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
                x, y, profile.cv_folds, int(analysis["probe_components"]), int(analysis["probe_shuffles"]), seed),
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
    scores = [heldout_score(x_all[:, layer].astype(np.float64), y, vectors.vectors[:, layer].numpy().astype(np.float64), valence)
              for layer in range(x_all.shape[1])]
    return {"accuracy": [s.accuracy for s in scores], "top3": [s.top3 for s in scores],
            "valence_auc": [s.valence_auc for s in scores], "n_samples": int(len(y)),
            "chance_accuracy": 1.0 / len(spec.emotions)}


def at_layer(acts: Activations, vectors: EmotionVectors, spec: AuditSpec, layer: int, profile: Profile,
             seed: int) -> dict[str, Any]:
    x_all, y = _emotion_samples(acts, spec)
    scores = centroid_scores(x_all[:, layer].astype(np.float64), y, profile.cv_folds, seed)
    v = vectors.vectors[:, layer].numpy().astype(np.float64)
    ratings = {"valence": np.array([e.valence for e in spec.emotions]),
               "arousal": np.array([e.arousal for e in spec.emotions])}
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


def compare_at_layer(acts: dict[str, Activations], vectors: dict[str, EmotionVectors], spec: AuditSpec, layer: int,
                     profile: Profile, seed: int) -> dict[str, Any]:
    margins = []
    for method in METHODS:
        x_all, y = _emotion_samples(acts[method], spec)
        scores = centroid_scores(x_all[:, layer].astype(np.float64), y, profile.cv_folds, seed)
        margins.append(per_class_mean(scores.margins, y, len(spec.emotions)))
    result = compare_methods(
        (METHODS[0], METHODS[1]), (margins[0], margins[1]),
        (vectors[METHODS[0]].vectors[:, layer].numpy().astype(np.float64),
         vectors[METHODS[1]].vectors[:, layer].numpy().astype(np.float64)),
    )
    return {"layer": layer, "statistic": "per-emotion mean cross-validated centroid margin", **result.to_dict()}


def _pc_scores(vectors: np.ndarray) -> np.ndarray:
    centred = vectors - vectors.mean(axis=0)
    u, s, _ = np.linalg.svd(centred, full_matrices=False)
    return u[:, :2] * s[:2]


def _emotion_samples(acts: Activations, spec: AuditSpec) -> tuple[np.ndarray, np.ndarray]:
    """Activations [n, layers, hidden] and class indices of the emotion samples (the reference left out)."""
    index = {e: i for i, e in enumerate(spec.emotion_names)}
    rows = [i for i, label in enumerate(acts.labels) if label in index]
    return acts.values[rows].numpy(), np.array([index[acts.labels[i]] for i in rows])


def _write_stories(path: Path, acts: Activations) -> None:
    prompts = acts.prompts or [""] * len(acts.texts)
    lines = [json.dumps({"label": lab, "prompt": p, "text": t}, ensure_ascii=False)
             for lab, p, t in zip(acts.labels, prompts, acts.texts, strict=True)]
    write_text(path, "\n".join(lines) + "\n")


def _results(run: Run, stages: dict[str, Any], started: datetime) -> dict[str, Any]:
    return {
        "schema_version": RESULTS_SCHEMA_VERSION,
        "model": run.lm.identity.to_dict(),
        "audit": {"name": run.spec.name, "path": str(run.spec.path), "sha256": run.spec.sha256,
                  "profile": run.profile.name, "seed": run.options.seed},
        "stages": stages,
        "timings": {k: round(v, 3) for k, v in run.timings.items()},
        "environment": {"emoaudit": __version__, "torch": torch.__version__, "transformers": transformers.__version__,
                        "python": platform.python_version(), "machine": platform.machine(),
                        "threads": torch.get_num_threads()},
        "started": started.isoformat(timespec="seconds"),
        "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
