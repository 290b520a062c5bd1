"""What sharing each prompt's KV cache across its steered and control rows saves in the behaviour stage.

The stage asks each of its prompts unsteered, toward each emotion at each strength and along each random
direction (15 rows a prompt in the standard profile). When steering adds its vector only at the generated
positions (`--steer-positions generated`) every row reads its prompt exactly as the others do, so `generate`
reads each distinct prompt once and copies its cache to the rows (`emoaudit.model.generation.
shared_prompt_cache`); under "all" (the default) the steered prompt differs per row past the steered layer
and is read per row. This generates the standard profile's rows for `--items` items per probe (random
directions in place of the emotion vectors: the cost does not depend on which direction) three ways in one
run: "generated" with the cache shared and without, and "all"; and checks that sharing changes no token.

    .venv/bin/python bench/shared_prompts.py --model smollm2-135m --items 10 \
        --json bench/results/shared-prompts-smollm2-135m.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import torch

from emoaudit.behaviour.probes import Steer, prompts, rows
from emoaudit.model.generation import generate
from emoaudit.model.load import load_model
from emoaudit.model.runtime import chat_prompt_ids, pad_batch, pad_id
from emoaudit.spec import load_spec
from emoaudit.steering.specificity import random_directions
from emoaudit.steering.trials import steering_context


def cpu_name() -> str:
    """The CPU's model name (Linux), its architecture elsewhere."""
    cpuinfo = Path("/proc/cpuinfo")
    lines = cpuinfo.read_text().splitlines() if cpuinfo.exists() else []
    names = [line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")]
    return names[0] if names else platform.machine()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--items", type=int, default=10, help="items per probe (the standard profile asks 30)")
    parser.add_argument("--tokens", type=int, default=32, help="new tokens per reply (the standard profile's 32)")
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--strength", type=float, default=0.29, help="the unit, in mean residual norms (SmolLM2's)")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    spec = load_spec()
    assert spec.behaviour is not None and spec.behaviour_config is not None
    lm = load_model(args.model, device="cpu", dtype=args.dtype)
    asked = prompts(spec.behaviour, args.items)
    layer = lm.stream.n_layers // 2
    prompt_ids = [chat_prompt_ids(lm, p.text) for p in asked]
    ids, mask = pad_batch(prompt_ids[:8], pad_id(lm), "left")
    with torch.inference_mode():  # the layer's mean residual norm, the unit of steering strengths
        states = lm.model(input_ids=ids, attention_mask=mask, output_hidden_states=True).hidden_states[layer + 1]
    mean_norm = float(states[mask.bool()].norm(dim=-1).mean())
    hidden = lm.identity.hidden_size
    emotions = {f"random{k}": d for k, d in enumerate(random_directions(4, hidden, 101))}
    config = spec.behaviour_config

    def steer(positions: str) -> Steer:
        return Steer(
            layer,
            args.strength,
            mean_norm,
            tuple(config.multipliers),
            emotions,
            config.control_directions,
            0,
            positions,
        )

    outputs: dict[str, list[list[int]]] = {}
    seconds: dict[str, float] = {}
    for name, positions, shared in (("generated_shared", "generated", True), ("generated_alone", "generated", False),
                                    ("all", "all", False)):  # fmt: skip
        s = steer(positions)
        planned = rows(len(asked), s, hidden)
        row_ids = [prompt_ids[r.prompt] for r in planned]
        deltas = torch.stack([r.delta if r.delta is not None else torch.zeros(hidden) for r in planned])
        context = steering_context(lm, layer, deltas, [len(i) for i in row_ids], positions)
        start = time.perf_counter()
        outputs[name] = generate(
            lm, row_ids, args.tokens, 0, temperature=0.0, top_p=1.0, batch_context=context, shared_prompts=shared
        )
        seconds[name] = round(time.perf_counter() - start, 1)
        print(f"{name}: {len(planned)} replies in {seconds[name]} s", flush=True)
    same = sum(a == b for a, b in zip(outputs["generated_shared"], outputs["generated_alone"], strict=True))
    result = {
        "what": "the behaviour stage's generation with each prompt's KV cache shared across its rows, against without",
        "command": "bench/shared_prompts.py " + " ".join(f"--{k} {v}" for k, v in vars(args).items() if k != "json"),
        "machine": f"{cpu_name()}, {os.cpu_count()} cores",
        "model": args.model,
        "dtype": args.dtype,
        "prompts": len(asked),
        "replies": len(outputs["all"]),
        "tokens": args.tokens,
        "seconds": seconds,
        "shared_over_alone": round(seconds["generated_shared"] / seconds["generated_alone"], 3),
        "identical_replies": f"{same} / {len(outputs['all'])}",
    }
    print(json.dumps(result, indent=1))
    if args.json:
        args.json.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
