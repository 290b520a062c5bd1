"""Activations of the audit's texts: passages the model reads (comprehension), stories it writes
(generation), and held-out sentences that score the vectors.

* comprehension: the model reads passages we wrote; activations are pooled over each passage.
* generation: the model writes a story for each emotion; activations are pooled over the tokens it
  generated, never over the prompt that named the emotion. Read while written, those tokens still attend
  to that prompt; `reread_activations` reads the stories again as plain text, without it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from emoaudit.capture.activations import Activations
from emoaudit.capture.generation_reader import GenerationReader
from emoaudit.capture.reading import capture
from emoaudit.errors import EmoauditError
from emoaudit.model.generation import generate
from emoaudit.model.loaded import LoadedModel
from emoaudit.model.runtime import chat_prompt_ids, eos_ids, generated_text, tokenize
from emoaudit.spec import AuditSpec, Profile
from emoaudit.storage import write_text

METHODS = ("comprehension", "generation")
_MIN_GENERATED_TOKENS = 8


def comprehension_activations(
    lm: LoadedModel, spec: AuditSpec, profile: Profile, on_progress: Callable[[float], None] | None = None
) -> Activations:
    labels, texts = _passages(spec.passages, spec.labels, profile.passages_per_label)
    return _read("comprehension", lm, spec, labels, texts, "passage", on_progress)


def heldout_activations(
    lm: LoadedModel, spec: AuditSpec, on_progress: Callable[[float], None] | None = None
) -> Activations:
    labels, texts = _passages(spec.heldout, spec.labels, None)
    return _read("heldout", lm, spec, labels, texts, "text", on_progress)


def heldout_set_rows(spec: AuditSpec) -> tuple[list[str], list[str], list[str]]:
    """(set names, labels, texts) of every text of the held-out sets, in the order they are read."""
    sets: list[str] = []
    labels: list[str] = []
    texts: list[str] = []
    for name, table in spec.heldout_sets.items():
        set_labels, set_texts = _passages(table, [lab for lab in spec.labels if lab in table], None)
        sets += [name] * len(set_texts)
        labels += set_labels
        texts += set_texts
    return sets, labels, texts


def heldout_set_activations(
    lm: LoadedModel, spec: AuditSpec, on_progress: Callable[[float], None] | None = None
) -> Activations:
    """The held-out sets' texts (other registers and languages), read in one pass; rows as `heldout_set_rows`."""
    _, labels, texts = heldout_set_rows(spec)
    return _read("heldout_sets", lm, spec, labels, texts, "text", on_progress)


def _read(
    name: str,
    lm: LoadedModel,
    spec: AuditSpec,
    labels: list[str],
    texts: list[str],
    unit: str,
    on_progress: Callable[[float], None] | None = None,
) -> Activations:
    """Texts we wrote, read as plain documents and pooled over each (`unit` names what a text is)."""
    captured = capture(lm, tokenize(lm, texts), spec.extraction.pooling, on_progress=on_progress)
    return Activations(
        name,
        labels,
        texts,
        captured.means,
        captured.token_norms,
        f"{spec.extraction.pooling} over the {unit}",
        embedding=captured.embedding,
    )


def reread_activations(
    lm: LoadedModel, spec: AuditSpec, stories: Activations, on_progress: Callable[[float], None] | None = None
) -> Activations:
    """The model's own stories read again as plain documents, without the instruction that named the emotion."""
    captured = capture(lm, tokenize(lm, stories.texts), spec.extraction.pooling, on_progress=on_progress)
    return Activations(
        "generation",
        list(stories.labels),
        list(stories.texts),
        captured.means,
        captured.token_norms,
        f"{spec.extraction.pooling} over the story, read again without its prompt",
        stories.prompts,
        captured.embedding,
    )


def generation_prompts(spec: AuditSpec, profile: Profile) -> tuple[list[str], list[str]]:
    """(labels, prompts): templates and topics rotate so that no two stories share both."""
    labels: list[str] = []
    prompts: list[str] = []
    for index, label in enumerate(spec.labels):
        is_reference = label == spec.reference
        templates = spec.reference_templates if is_reference else spec.emotion_templates
        topics = spec.reference_topics if is_reference else spec.topics
        for j in range(profile.stories_per_label):
            template = templates[j % len(templates)]
            topic = topics[(index * 5 + j * 3) % len(topics)]
            labels.append(label)
            prompts.append(template.format(emotion=label, topic=topic))
    return labels, prompts


def generation_activations(
    lm: LoadedModel,
    spec: AuditSpec,
    profile: Profile,
    seed: int,
    on_progress: Callable[[float], None] | None = None,
) -> Activations:
    labels, prompts = generation_prompts(spec, profile)
    prompt_ids = [chat_prompt_ids(lm, p) for p in prompts]
    reader = GenerationReader(lm, len(prompts), eos_ids(lm))
    written = generate(
        lm,
        prompt_ids,
        profile.max_new_tokens + 1,  # the last token is never fed back: read the ones before it
        seed,
        temperature=spec.generation.temperature,
        top_p=spec.generation.top_p,
        on_progress=on_progress,
        batch_context=reader.batch,
    )
    new_ids = [ids[: profile.max_new_tokens] for ids in written]
    kept = [i for i, ids in enumerate(new_ids) if len(ids) >= _MIN_GENERATED_TOKENS]
    missing = sorted({labels[i] for i in range(len(labels))} - {labels[i] for i in kept})
    if missing:
        raise EmoauditError(
            f"the model wrote (almost) nothing for: {', '.join(missing)}; generation-based extraction needs text"
        )
    captured = reader.captured(kept)
    texts = [generated_text(lm, new_ids[i]) for i in kept]
    return Activations(
        "generation",
        [labels[i] for i in kept],
        texts,
        captured.means,
        captured.token_norms,
        "mean over the generated tokens",
        [prompts[i] for i in kept],
    )


def _passages(table: dict[str, list[str]], labels: list[str], per_label: int | None) -> tuple[list[str], list[str]]:
    out_labels: list[str] = []
    texts: list[str] = []
    for label in labels:
        chosen = table[label][:per_label]
        out_labels += [label] * len(chosen)
        texts += chosen
    return out_labels, texts


def read_stories(path: Path, emotions: list[str]) -> dict[str, list[str]]:
    """The extraction's stories by the emotion their prompt asked for (the reference's left out)."""
    by_label: dict[str, list[str]] = {e: [] for e in emotions}
    for line in path.read_text(encoding="utf-8").splitlines():
        story = json.loads(line)
        if story["label"] in by_label:
            by_label[story["label"]].append(story["text"])
    return by_label


def write_stories(path: Path, acts: Activations) -> None:
    """stories.jsonl: one {"label", "prompt", "text"} a line, in the order they were written."""
    prompts = acts.prompts or [""] * len(acts.texts)
    lines = [
        json.dumps({"label": lab, "prompt": p, "text": t}, ensure_ascii=False)
        for lab, p, t in zip(acts.labels, prompts, acts.texts, strict=True)
    ]
    write_text(path, "\n".join(lines) + "\n")
