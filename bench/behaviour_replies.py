"""Real replies of a packaged model to the behaviour stage's refusal requests and their benign twins, unsteered,
steered toward emotions and along random directions, with the stage's own prompts and generation code
(`emoaudit.behaviour.probes.generate_replies`): raw material for the refusal judge's labelled replies.

    EMOAUDIT_CACHE=... .venv/bin/python bench/behaviour_replies.py smollm2-135m RUN_DIR OUT.jsonl \
        [--emotions calm desperate angry happy] [--multipliers 1.0] [--controls 1] [--tokens 32]

RUN_DIR is a finished audit of the same model (its vectors of the steering method, the steering stage's layer and
calibrated unit strength). Each line: the stage's `Reply`, the model, the layer and the unit strength.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict
from pathlib import Path

from emoaudit.behaviour.probes import Steer, generate_replies, prompts
from emoaudit.model.load import load_model
from emoaudit.model.loaded import LoadedModel
from emoaudit.spec import load_spec
from emoaudit.vectors import EmotionVectors


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model")
    parser.add_argument("run", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--emotions", nargs="*", default=["calm", "desperate", "angry", "happy"])
    parser.add_argument("--multipliers", nargs="+", type=float, default=[1.0])
    parser.add_argument("--controls", type=int, default=1)
    parser.add_argument("--tokens", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--probes", nargs="+", default=["refusal"], choices=["refusal", "over_refusal"])
    args = parser.parse_args()
    spec = load_spec()
    assert spec.behaviour is not None
    lm = load_model(args.model, device="cpu", dtype="auto")
    steer = audited_steer(lm, args)
    asked = [p for p in prompts(spec.behaviour, len(spec.behaviour.refusal)) if p.probe in args.probes]
    replies = generate_replies(lm, asked, steer, args.tokens)
    args.out.write_text(
        "".join(
            json.dumps({**asdict(r), "model": args.model, "layer": steer.layer, "strength": steer.unit_strength}) + "\n"
            for r in replies
        ),
        encoding="utf-8",
    )


def audited_steer(lm: LoadedModel, args: argparse.Namespace) -> Steer:
    """The audit's steering layer, calibrated unit strength and vectors."""
    spec = load_spec()
    vectors = EmotionVectors.load(args.run / "vectors" / f"{spec.steering.method}.safetensors")
    steering = json.loads((args.run / "results.json").read_text(encoding="utf-8"))["stages"]["steering"]
    layer, unit = steering["layer"], steering["calibration"]["unit_strength"]
    steer = Steer(
        layer=layer,
        unit_strength=unit,
        mean_norm=float(vectors.mean_norm[layer]),
        multipliers=tuple(args.multipliers),
        directions={e: vectors.direction(e, layer) for e in args.emotions},
        control_directions=args.controls,
        seed=args.seed,
        positions="all",
    )
    return steer


if __name__ == "__main__":
    main()
