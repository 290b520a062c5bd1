"""The analysis stage on synthetic activations shaped like a 7B model, and the same analysis twice on real ones.

`analysis_seconds(...)` times what the extraction stage runs on activations once the model is done:
the vectors of both methods, the layer sweep of both, the held-out curves and the measurements at the
emotion layer. The activations are synthetic (the shape is what costs, not the values): class means
along random directions on top of a few dominant shared directions, as real hidden states have.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from emoaudit.analysis.sweep import analyse_method, at_layer, compare_at_layer, heldout_curves
from emoaudit.capture.activations import Activations
from emoaudit.capture.stimuli import METHODS
from emoaudit.spec import AuditSpec, Profile, load_spec
from emoaudit.vectors import EmotionVectors

SHAPE_7B = (32, 4096)  # layers, hidden: Llama-2-7B, Mistral-7B, Qwen2.5-7B (28 × 3584) is smaller


def synthetic(method: str, labels: list[str], n_layers: int, hidden: int, seed: int) -> Activations:
    """Activations [n, layers, hidden] float32: shared anisotropic directions, a class signal, noise."""
    rng = np.random.default_rng(seed)
    names = list(dict.fromkeys(labels))
    y = np.array([names.index(lab) for lab in labels])
    shared = rng.standard_normal((4, n_layers, hidden)).astype(np.float32) * 3.0
    signal = rng.standard_normal((len(names), n_layers, hidden)).astype(np.float32) * 0.3
    loadings = rng.standard_normal((len(labels), 4)).astype(np.float32)
    values = np.einsum("nk,klh->nlh", loadings, shared) + signal[y]
    values += rng.standard_normal(values.shape, dtype=np.float32)
    norms = np.abs(rng.standard_normal((len(labels), n_layers))).astype(np.float32) + 10.0
    return Activations(method, labels, [""] * len(labels), torch.from_numpy(values), torch.from_numpy(norms), "mean")


def analysis(
    acts: dict[str, Activations], held: Activations, spec: AuditSpec, profile: Profile, seed: int
) -> dict[str, Any]:
    """What the extraction stage computes from activations (emoaudit/pipeline/stages.py), less the writes."""
    vectors = {
        m: EmotionVectors.from_activations(acts[m], spec.emotion_names, spec.reference, spec.analysis.denoise_variance)
        for m in METHODS
    }
    sweeps = {m: analyse_method(acts[m], vectors[m], spec, profile, seed, lambda: None) for m in METHODS}
    layer = sweeps[spec.analysis.layer_method].chosen_layer
    held_curves = {m: heldout_curves(held, vectors[m], spec) for m in METHODS}
    at_layers = {m: at_layer(acts[m], vectors[m], spec, layer, profile, seed) for m in METHODS}
    comparison = compare_at_layer(at_layers, vectors, layer)
    return {"sweeps": sweeps, "heldout": held_curves, "at_layer": at_layers, "comparison": comparison}


def synthetic_inputs(
    spec: AuditSpec, profile: Profile, shape: tuple[int, int], seed: int
) -> tuple[dict[str, Activations], Activations]:
    """Activations of both methods and the held-out sentences with the profile's sample counts."""
    n_layers, hidden = shape
    counts = {"comprehension": profile.passages_per_label, "generation": profile.stories_per_label}
    acts = {
        m: synthetic(m, [lab for lab in spec.labels for _ in range(counts[m])], n_layers, hidden, seed + i)
        for i, m in enumerate(METHODS)
    }
    held_labels = [lab for lab, sentences in spec.heldout.items() for _ in sentences]
    return acts, synthetic("heldout", held_labels, n_layers, hidden, seed + 2)


def analysis_seconds(spec: AuditSpec, profile: Profile, shape: tuple[int, int] = SHAPE_7B, seed: int = 0) -> float:
    """Wall seconds of `analysis` on synthetic activations of `shape` (layers, hidden)."""
    acts, held = synthetic_inputs(spec, profile, shape, seed)
    start = time.perf_counter()
    analysis(acts, held, spec, profile, seed)
    return time.perf_counter() - start


def numbers(result: Any, prefix: str = "") -> dict[str, float]:
    """Every number in an analysis result, flattened to {dotted path: value}."""
    if dataclasses.is_dataclass(result) and not isinstance(result, type):
        result = {f.name: getattr(result, f.name) for f in dataclasses.fields(result)}
    if isinstance(result, dict):
        return {k: v for key, value in result.items() for k, v in numbers(value, f"{prefix}{key}.").items()}
    if isinstance(result, list | tuple | np.ndarray):
        return {k: v for i, value in enumerate(result) for k, v in numbers(value, f"{prefix}{i}.").items()}
    if isinstance(result, int | float | np.floating | np.integer) and not isinstance(result, bool):
        return {prefix.rstrip("."): float(result)}
    return {}


def real_numbers(activations: Path, profile: str, seed: int = 0) -> dict[str, float]:
    """`numbers` of the analysis of a scan's saved activations (OUT/activations) under `profile`."""
    spec = load_spec()
    acts = {m: Activations.load(activations / f"{m}.safetensors") for m in METHODS}
    held = Activations.load(activations / "heldout.safetensors")
    return numbers(analysis(acts, held, spec, spec.profile(profile), seed))


def differences(old: dict[str, float], new: dict[str, float], rel: float) -> list[str]:
    """Keys missing on one side, and values that differ by more than `rel` relative (absolute near 0)."""
    out = [f"{k}: only in one" for k in sorted(set(old) ^ set(new))]
    for key in sorted(set(old) & set(new)):
        a, b = old[key], new[key]
        if not (math.isclose(a, b, rel_tol=rel, abs_tol=rel) or (math.isnan(a) and math.isnan(b))):
            out.append(f"{key}: {a!r} != {b!r}")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--activations", type=Path, help="a scan's OUT/activations: write its analysis' numbers")
    parser.add_argument("--profile", default="standard")
    parser.add_argument("--json", type=Path, help="where --activations writes")
    parser.add_argument("--compare", nargs=2, type=Path, metavar=("OLD", "NEW"), help="two --json files")
    parser.add_argument("--rel", type=float, default=1e-6)
    args = parser.parse_args()
    if args.activations:
        start = time.perf_counter()
        found = real_numbers(args.activations, args.profile)
        print(f"{len(found)} numbers in {time.perf_counter() - start:.1f} s")
        args.json.write_text(json.dumps(found, indent=1) + "\n")
    if args.compare:
        old, new = (json.loads(p.read_text()) for p in args.compare)
        diffs = differences(old, new, args.rel)
        print("\n".join(diffs[:50]) or f"all {len(old)} numbers equal to {args.rel:g} relative")
        raise SystemExit(1 if diffs else 0)


if __name__ == "__main__":
    main()
