"""emoaudit's benchmark: every figure is a ratio measured in this one run, on this machine.

    python bench/run.py --model smollm2-135m --json bench.json

Measures the model's raw batched forward throughput (the limit), emoaudit's all-layer activation
capture against it, the same extraction done with the steering-vectors library (batch sizes 1, 8,
32; on the model as transformers loads it by default, float32, and in emoaudit's dtype) against
emoaudit's, steered against unsteered generation, the wall time of each stage of
`scan --profile quick` and `--profile standard`, each scan's efficiency (its model-bound stages' ideal
time against their actual time, bench/efficiency.py), the analysis stage's time on synthetic activations
shaped like a 7B model (bench/analysis_check.py), and peak memory against weights plus activations.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from emoaudit.spec.pooling import Pooling
from emoaudit.capture.reading import READ_BATCH_TOKENS, capture
from emoaudit.model.generation import generate
from emoaudit.model.hooks import add_to_blocks
from emoaudit.model.load import load_model
from emoaudit.model.loaded import LoadedModel
from emoaudit.model.runtime import chat_prompt_ids, length_batches, pad_batch, pad_id, run_body, tokenize
from emoaudit.spec import load_spec
from emoaudit.vectors import unit_deltas

from analysis_check import analysis_seconds  # noqa: I001 (bench/, beside this script)
from efficiency import breakdown, efficiency, throughputs


def timed(fn: Any, repeats: int = 1) -> tuple[float, Any]:
    """Best wall time of `repeats` calls, and the last result."""
    best, result = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        if torch.cuda.is_available():  # GPU work is asynchronous: the clock stops when it is done
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - start)
    return best, result


def raw_forward(lm: LoadedModel, sequences: list[list[int]]) -> None:
    """The limit: the model body over the same length-sorted batches, no hooks, no LM head."""
    pad = pad_id(lm)
    for batch in length_batches([len(s) for s in sequences], READ_BATCH_TOKENS):
        run_body(lm, *pad_batch([sequences[i] for i in batch], pad, "right"))


def steering_vectors_extraction(lm: LoadedModel, spec: Any, batch_size: int) -> dict[str, dict[int, torch.Tensor]]:
    """What a user of steering-vectors writes: one trained vector per emotion from (emotion, neutral) pairs."""
    from steering_vectors import train_steering_vector

    neutral = spec.passages[spec.reference]
    layers = list(range(lm.stream.n_layers))
    out = {}
    for emotion in spec.emotion_names:
        pairs = list(zip(spec.passages[emotion], neutral, strict=False))
        vector = train_steering_vector(
            lm.model, lm.tokenizer, pairs, layers=layers, read_token_index=-1, batch_size=batch_size
        )
        out[emotion] = {layer: t.float().cpu() for layer, t in vector.layer_activations.items()}
    return out


def emoaudit_extraction(lm: LoadedModel, spec: Any) -> dict[str, torch.Tensor]:
    """The same vectors with emoaudit: every text read once, last token, emotion mean minus neutral mean."""
    labels = [label for label in spec.labels for _ in spec.passages[label]]
    texts = [t for label in spec.labels for t in spec.passages[label]]
    acts = capture(lm, tokenize(lm, texts), Pooling("last")).means
    neutral = acts[[i for i, lab in enumerate(labels) if lab == spec.reference]].mean(dim=0)
    return {e: acts[[i for i, lab in enumerate(labels) if lab == e]].mean(dim=0) - neutral for e in spec.emotion_names}


def peer_figures(lm: LoadedModel, spec: Any, ours: dict[str, torch.Tensor], n_layers: int) -> dict[str, Any]:
    """steering-vectors at batch sizes 1, 8 and 32: seconds, the best, and its vectors' least cosine to ours."""
    seconds: dict[str, float | str] = {}
    best_s, best_batch, cosines = float("inf"), None, []
    for batch_size in (1, 8, 32):
        try:
            took, theirs = timed(lambda: steering_vectors_extraction(lm, spec, batch_size))  # noqa: B023
        except Exception as exc:  # a peer library's failure is a finding of the benchmark, not a crash
            seconds[f"batch_{batch_size}"] = f"failed: {type(exc).__name__}: {exc}"[:200]
            continue
        seconds[f"batch_{batch_size}"] = took
        cos = [
            float(torch.nn.functional.cosine_similarity(ours[e][layer], theirs[e][layer], dim=0))
            for e in spec.emotion_names
            for layer in range(n_layers)
        ]
        seconds[f"batch_{batch_size}_cosine_min"] = min(cos)
        if took < best_s:
            best_s, best_batch, cosines = took, batch_size, cos
    return {
        "seconds": seconds,
        "best_batch": best_batch,
        "best_seconds": best_s if best_batch else None,
        "cosine_min": min(cosines) if cosines else None,
    }


def generation_ratio(lm: LoadedModel, spec: Any, tokens: int) -> dict[str, float]:
    prompts = [chat_prompt_ids(lm, sc.prompt) for sc in spec.scenarios] * 2
    deltas = unit_deltas(torch.randn(len(prompts), lm.identity.hidden_size), [0.3] * len(prompts), 10.0)
    layer = lm.stream.n_layers // 2

    def run(steered: bool) -> int:
        context = (lambda batch: add_to_blocks(lm.stream, [layer], deltas[batch])) if steered else None
        out = generate(lm, prompts, tokens, 0, temperature=0.0, top_p=1.0, batch_context=context)
        return sum(len(o) for o in out)

    plain_s, plain_n = timed(lambda: run(False), 2)
    steered_s, steered_n = timed(lambda: run(True), 2)
    # The same prompts and token budget: the ratio of wall times is the throughput ratio.
    return {
        "unsteered_tokens_per_s": plain_n / plain_s,
        "steered_tokens_per_s": steered_n / steered_s,
        "steered_vs_unsteered_generation": plain_s / steered_s,
    }


def scan(model: str, profile: str, out: Path, extra: list[str]) -> dict[str, Any]:
    """A full `emoaudit scan` in a child process: wall time, and the stage timings and peak memory it records."""
    cmd = [
        sys.executable,
        "-m",
        "emoaudit",
        "scan",
        model,
        "--profile",
        profile,
        "--out",
        str(out),
        "--fail-on",
        "never",
    ]
    start = time.perf_counter()
    proc = subprocess.run([*cmd, *extra], capture_output=True, text=True)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"scan --profile {profile} failed: {proc.stderr.strip().splitlines()[-1:]}")
    results = json.loads((out / "results.json").read_text())
    activations = sum(p.stat().st_size for p in (out / "activations").glob("*.safetensors"))
    return {
        "seconds": wall,
        "results": results,
        "timings": results["timings"],
        "resources": results["resources"],
        "activation_bytes": activations,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--dtype", default="auto")
    parser.add_argument(
        "--peer-dtype", default="float32", help="the dtype steering-vectors runs in (its users' default)"
    )
    parser.add_argument("--json", type=Path, help="write the figures here")
    parser.add_argument("--profiles", default="quick,standard", help="scan profiles to time ('' for none)")
    parser.add_argument("--gen-tokens", type=int, default=32)
    parser.add_argument("--keep", type=Path, help="keep each scan's outputs under this folder")
    parser.add_argument("--no-peer", action="store_true", help="skip steering-vectors (its keys become null)")
    parser.add_argument(
        "--analysis-shape", default="32x4096", help="LAYERSxHIDDEN of the synthetic analysis ('' for none)"
    )
    args = parser.parse_args()

    os.environ.setdefault("TQDM_DISABLE", "1")
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    lm = load_model(args.model, device=args.device, dtype=args.dtype)
    spec = load_spec()
    texts = [t for label in spec.labels for t in spec.passages[label]]
    sequences = tokenize(lm, texts)
    n_tokens = sum(len(s) for s in sequences)
    figures: dict[str, Any] = {
        "model": lm.identity.to_dict(),
        "texts": len(texts),
        "tokens": n_tokens,
        "threads": torch.get_num_threads(),
    }

    raw_forward(lm, sequences[:8])  # warm-up
    limit_s, _ = timed(lambda: raw_forward(lm, sequences), 3)
    capture_s, _ = timed(lambda: capture(lm, sequences, Pooling("mean", 1)), 3)
    figures |= {
        "raw_forward_tokens_per_s": n_tokens / limit_s,
        "capture_tokens_per_s": n_tokens / capture_s,
        "capture_vs_limit": limit_s / capture_s,
    }

    ours_s, ours = timed(lambda: emoaudit_extraction(lm, spec), 2)
    figures["emoaudit_extraction_seconds"] = ours_s
    # The peer runs on the model as its users load it (transformers' default: float32), and in emoaudit's
    # own dtype; the first is the headline (what a user would otherwise write), the second isolates the code.
    peer_dtypes = {} if args.no_peer else dict.fromkeys([args.peer_dtype, lm.identity.dtype])
    for peer_dtype in peer_dtypes:
        peer_lm = (
            lm if peer_dtype == lm.identity.dtype else load_model(args.model, device=args.device, dtype=peer_dtype)
        )
        result = peer_figures(peer_lm, spec, ours, lm.stream.n_layers)
        del peer_lm
        suffix = "" if peer_dtype == args.peer_dtype else "_same_dtype"
        best = result["best_seconds"]
        figures |= {
            f"steering_vectors{suffix}_dtype": peer_dtype,
            f"steering_vectors{suffix}_seconds": result["seconds"],
            f"steering_vectors{suffix}_best_batch": result["best_batch"],
            f"speedup_vs_steering_vectors{suffix}": best / ours_s if best else None,
            f"vector_cosine_min{suffix}": result["cosine_min"],
        }
    if args.no_peer:
        for key in ("speedup_vs_steering_vectors", "vector_cosine_min"):
            figures[key] = figures[f"{key}_same_dtype"] = None
    elif len(peer_dtypes) == 1:  # the peer already ran in emoaudit's dtype
        for key in ("speedup_vs_steering_vectors", "vector_cosine_min"):
            figures[f"{key}_same_dtype"] = figures[key]

    figures |= generation_ratio(lm, spec, args.gen_tokens)

    if args.analysis_shape:
        layers, hidden = (int(v) for v in args.analysis_shape.split("x"))
        key = "analysis_seconds_7b_shape" if (layers, hidden) == (32, 4096) else f"analysis_seconds_{layers}x{hidden}"
        figures[key] = analysis_seconds(spec, spec.profile("standard"), (layers, hidden))

    weight_bytes = sum(p.numel() * p.element_size() for p in lm.model.parameters())
    figures["weight_bytes"] = weight_bytes
    for profile in [p for p in args.profiles.split(",") if p]:
        with tempfile.TemporaryDirectory() as tmp:
            out = (args.keep / profile) if args.keep else Path(tmp) / "out"
            result = scan(args.model, profile, out, ["--device", args.device, "--dtype", args.dtype])
        figures[f"scan_{profile}_seconds"] = result["seconds"]
        speeds = throughputs(lm, spec, spec.profile(profile), sequences)
        found = efficiency(result["results"], speeds, figures["raw_forward_tokens_per_s"])
        figures[f"scan_{profile}_throughputs"] = speeds
        figures[f"scan_{profile}_efficiency_stages"] = found
        figures[f"scan_efficiency_{profile}"] = found["efficiency"]
        print(breakdown(f"scan --profile {profile}", found))
        figures[f"scan_{profile}_stage_seconds"] = result["timings"]
        peak = result["resources"]
        figures[f"scan_{profile}_peak_rss_bytes"] = peak["peak_rss_bytes"]
        kept = weight_bytes + result["activation_bytes"]
        figures[f"scan_{profile}_runtime_rss_bytes"] = peak["runtime_rss_bytes"]
        figures[f"scan_{profile}_peak_memory_ratio"] = peak["peak_rss_bytes"] / kept
        # What the audit adds to the interpreter and its libraries (the process before the model loaded),
        # a fixed few hundred MB that dominates the whole-process figure on small models.
        figures[f"scan_{profile}_peak_memory_ratio_above_runtime"] = (
            peak["peak_rss_bytes"] - peak["runtime_rss_bytes"]
        ) / kept
        if peak["peak_cuda_bytes"] is not None:  # the activations kept live on the host; the GPU holds the model
            figures[f"scan_{profile}_peak_cuda_bytes"] = peak["peak_cuda_bytes"]
            figures[f"scan_{profile}_peak_cuda_ratio"] = peak["peak_cuda_bytes"] / weight_bytes
    for key in ("peak_memory_ratio", "peak_memory_ratio_above_runtime", "peak_cuda_ratio"):
        per_profile = [v for k, v in figures.items() if k.endswith(f"_{key}")]
        figures[key] = max(per_profile) if per_profile else None
    if not args.profiles:
        figures["scan_quick_seconds"] = figures["scan_standard_seconds"] = None
        figures["scan_efficiency_quick"] = figures["scan_efficiency_standard"] = None

    keys = (
        "capture_vs_limit",
        "speedup_vs_steering_vectors",
        "vector_cosine_min",
        "speedup_vs_steering_vectors_same_dtype",
        "vector_cosine_min_same_dtype",
        "steered_vs_unsteered_generation",
        "scan_quick_seconds",
        "scan_standard_seconds",
        "scan_efficiency_quick",
        "scan_efficiency_standard",
        "analysis_seconds_7b_shape",
        "peak_memory_ratio",
        "peak_memory_ratio_above_runtime",
        "peak_cuda_ratio",
    )
    width = max(len(k) for k in keys)
    for key in keys:
        value = figures.get(key)
        print(f"{key:<{width}}  {value:.3f}" if isinstance(value, float) else f"{key:<{width}}  {value}")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
