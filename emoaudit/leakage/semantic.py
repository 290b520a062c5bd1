"""Semantic cross-lingual entanglement: does steering toward an emotion raise that emotion's own words in
other languages in the logit lens, beyond a random direction of the same size?

The foreign-script share (`assess`) counts any foreign token, meaningful or not, and on some models the
unsteered lens already reads half foreign script. The claim tested here is the paper's narrower one,
that steering promotes *semantically aligned* tokens (toward "angry": 愤怒, 生气). With the
specification's translations (emoaudit/audits/default/translations.json), the lens's log-probability of an
emotion's words in each language under its vector is read against the unsteered state, against the
steering stage's own seeded random directions at the same strengths (`steering.specificity.
random_directions`, the same seed and number), and against the other emotions' words in that language
under the same vector.

A word stands for its first token: the lens reads one next token, and a word's first token is what the
model must emit to begin it. Multi-token words therefore count by a prefix that other words may share;
a prefix without meaning (a lone byte of a longer character, a space, a single letter) is left out.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import torch
from scipy.stats import wilcoxon

from emoaudit.results.leakage import SemanticEntanglement, SemanticLanguage, SemanticPair
from emoaudit.results.steering import Steering
from emoaudit.leakage.scripts import script_of
from emoaudit.model.loaded import LoadedModel
from emoaudit.model.logits import lens_logits
from emoaudit.model.runtime import token_ids
from emoaudit.steering.specificity import random_directions
from emoaudit.vectors import unit_deltas

TOKENS_RULE = (
    "each word's first token, of the word alone and after a space; a token is usable when its text has no "
    "U+FFFD (a byte of a longer character) and has three letters or more, or one Han character; a token that "
    "begins words of two emotions in one language stands for neither"
)
TEST = (
    "one-sided Wilcoxon signed-rank tests across the steered emotions (each its mean over languages) of "
    "excess > 0 (p_value) and of selectivity > 0 (selectivity_p_value)"
)

Column = tuple[str, str]  # (language, emotion)


@dataclass(frozen=True)
class WordTokens:
    """The first tokens that stand for each emotion's words in each language."""

    ids: dict[str, dict[str, list[int]]]  # language -> emotion -> token ids (empty: no usable token)
    unusable: dict[str, int]  # language -> words without a usable first token


@dataclass(frozen=True)
class Grid:
    """What of the steering stage the lens repeats: its strengths and its random-direction controls."""

    multipliers: list[float]
    strengths: list[float]  # unit strength × multiplier, in units of the layer's mean residual norm
    mean_norm: float
    calibrated_range: float  # multipliers up to this are pooled into the pairs
    control_directions: int
    control_seed: int

    @classmethod
    def of(cls, steering: Steering) -> Grid:
        return cls(
            steering.multipliers,
            steering.strengths,
            steering.mean_norm,
            steering.thresholds.calibrated_range,
            steering.controls.directions,
            steering.controls.seed,
        )


def usable(piece: str) -> bool:
    """Whether a decoded token can stand for a word: see TOKENS_RULE."""
    letters = [s for s in map(script_of, piece) if s is not None]
    return "\ufffd" not in piece and (len(letters) >= 3 or "Han" in letters)


def word_tokens(lm: LoadedModel, translations: Mapping[str, Mapping[str, tuple[str, ...]]]) -> WordTokens:
    """The usable first tokens of each emotion's words, by the model's tokenizer (TOKENS_RULE)."""
    ids: dict[str, dict[str, list[int]]] = {}
    unusable: dict[str, int] = {}
    for language, table in translations.items():
        firsts: dict[str, list[int]] = {}
        unusable[language] = 0
        for emotion, words in table.items():
            found: list[int] = []
            for word in words:
                starts = [ids_[0] for ids_ in (token_ids(lm, word), token_ids(lm, " " + word)) if ids_]
                kept = [t for t in dict.fromkeys(starts) if usable(str(lm.tokenizer.decode([t])))]
                unusable[language] += not kept
                found += kept
            firsts[emotion] = list(dict.fromkeys(found))
        owners: dict[int, set[str]] = {}
        for emotion, tokens in firsts.items():
            for t in tokens:
                owners.setdefault(t, set()).add(emotion)
        ids[language] = {e: [t for t in tokens if len(owners[t]) == 1] for e, tokens in firsts.items()}
    return WordTokens(ids, unusable)


def read_columns(lm: LoadedModel, states: torch.Tensor, sets: list[list[int]]) -> tuple[np.ndarray, np.ndarray]:
    """The lens of states [n, hidden]: for each token set, the log-probability of the set (log-sum-exp of
    the log-softmax over its tokens) and its best token's rank (1 = top), each [n, sets]."""
    logits = lens_logits(lm, states)
    logprobs = torch.log_softmax(logits, dim=-1)
    ascending = torch.sort(logits, dim=-1).values
    lp = torch.stack([torch.logsumexp(logprobs[:, ids], dim=-1) for ids in sets], dim=-1)
    best = torch.stack([logits[:, ids].max(dim=-1).values for ids in sets], dim=-1).contiguous()
    # tokens with a larger logit than the set's best, plus one
    rank = 1 + logits.shape[-1] - torch.searchsorted(ascending, best, right=True)
    return lp.double().numpy(), rank.double().numpy()


def entanglement(
    lm: LoadedModel, states: torch.Tensor, directions: Mapping[str, torch.Tensor], grid: Grid, tokens: WordTokens
) -> SemanticEntanglement:
    """The lens of the unsteered states [scenarios, hidden], of the states steered by each emotion's direction
    [hidden] and by the random controls at every strength of the grid: see SemanticEntanglement."""
    columns: list[Column] = [(lang, e) for lang, table in tokens.ids.items() for e, ids in table.items() if ids]
    if not columns:  # no word has a usable first token in this vocabulary: the lens has nothing to read
        unread = {
            lang: SemanticLanguage({e: [] for e in table}, tokens.unusable[lang], None, None, {})
            for lang, table in tokens.ids.items()
        }
        return _summarise(unread, directions, grid, {})
    sets = [tokens.ids[lang][e] for lang, e in columns]
    base_lp, base_rank = read_columns(lm, states, sets)  # [S, P]
    n = len(states)
    steered: dict[str, tuple[np.ndarray, np.ndarray]] = {}  # emotion -> [M, S, P] log-probabilities, ranks
    for emotion, direction in directions.items():
        deltas = unit_deltas(direction[None].expand(len(grid.strengths), -1), grid.strengths, grid.mean_norm)
        lp, rank = read_columns(lm, (states[None] + deltas[:, None]).reshape(-1, states.shape[-1]), sets)
        steered[emotion] = (lp.reshape(-1, n, len(sets)), rank.reshape(-1, n, len(sets)))
    controls = random_directions(grid.control_directions, states.shape[-1], grid.control_seed)
    random_lp, random_rank = [], []  # per multiplier, [D, S, P]
    for strength in grid.strengths:
        deltas = unit_deltas(controls, [strength] * len(controls), grid.mean_norm)
        lp, rank = read_columns(lm, (deltas[:, None] + states[None]).reshape(-1, states.shape[-1]), sets)
        random_lp.append(lp.reshape(len(controls), n, len(sets)))
        random_rank.append(rank.reshape(len(controls), n, len(sets)))
    r_lp, r_rank = np.stack(random_lp), np.stack(random_rank)  # [M, D, S, P]
    calibrated = np.array([m <= grid.calibrated_range for m in grid.multipliers])
    random_rise = (r_lp - base_lp).mean(axis=2)  # [M, D, P]

    languages: dict[str, SemanticLanguage] = {}
    by_multiplier: dict[float, list[float]] = {m: [] for m in grid.multipliers}
    for language, table in tokens.ids.items():
        own = [i for i, (lang, _) in enumerate(columns) if lang == language]
        pairs: dict[str, SemanticPair] = {}
        # an emotion's words are scored where they have tokens, and other emotions' words to rise against
        for emotion in [e for e in directions if (language, e) in columns and len(own) > 1]:
            p = columns.index((language, emotion))
            lp, rank = steered[emotion]
            rise = (lp - base_lp).mean(axis=1)  # [M, P]
            control = random_rise[calibrated][:, :, p].mean(axis=0)  # [D]
            gain = float(rise[calibrated, p].mean())
            others = [float(rise[calibrated, q].mean()) for q in own if q != p]
            pairs[emotion] = SemanticPair(
                logprob_unsteered=float(base_lp[:, p].mean()),
                logprob_steered=float(lp[calibrated][:, :, p].mean()),
                logprob_random=float(r_lp[calibrated][..., p].mean()),
                rank_unsteered=float(np.median(base_rank[:, p])),
                rank_steered=float(np.median(rank[calibrated][:, :, p])),
                rank_random=float(np.median(r_rank[calibrated][..., p])),
                rise=gain,
                random_rise=float(control.mean()),
                excess=gain - float(control.mean()),
                other_rise=max(others),
                selectivity=gain - float(np.mean(others)),
                specific=bool(gain > control.max() and gain > max(others)),
            )
            for m, multiplier in enumerate(grid.multipliers):
                by_multiplier[multiplier].append(float(rise[m, p] - random_rise[m, :, p].mean()))
        languages[language] = SemanticLanguage(
            tokens={e: [str(lm.tokenizer.decode([t])) for t in ids] for e, ids in table.items()},
            unusable_words=tokens.unusable[language],
            mean_excess=_mean([x.excess for x in pairs.values()]),
            specific_share=_mean([float(x.specific) for x in pairs.values()]),
            emotions=pairs,
        )
    return _summarise(languages, directions, grid, by_multiplier)


def _summarise(
    languages: dict[str, SemanticLanguage],
    directions: Mapping[str, torch.Tensor],
    grid: Grid,
    by_multiplier: dict[float, list[float]],
) -> SemanticEntanglement:
    pairs = [x for lang in languages.values() for x in lang.emotions.values()]
    by_emotion = _by_emotion(languages, directions, "excess")
    selectivity = _by_emotion(languages, directions, "selectivity")
    return SemanticEntanglement(
        tokens_rule=TOKENS_RULE,
        multipliers=[m for m in grid.multipliers if m <= grid.calibrated_range],
        control_directions=grid.control_directions,
        control_seed=grid.control_seed,
        languages=languages,
        by_emotion=by_emotion,
        by_multiplier={str(m): float(np.mean(v)) for m, v in by_multiplier.items() if v},
        pairs=len(pairs),
        mean_rise=_mean([x.rise for x in pairs]) or 0.0,
        mean_random_rise=_mean([x.random_rise for x in pairs]) or 0.0,
        mean_excess=_mean([x.excess for x in pairs]) or 0.0,
        mean_selectivity=_mean([x.selectivity for x in pairs]) or 0.0,
        specific_share=_mean([float(x.specific) for x in pairs]) or 0.0,
        emotions_higher=sum(x > 0 for x in by_emotion.values()),
        p_value=_wilcoxon(list(by_emotion.values())),
        by_emotion_selectivity=selectivity,
        selectivity_p_value=_wilcoxon(list(selectivity.values())),
        test=TEST,
    )


def _by_emotion(
    languages: dict[str, SemanticLanguage], directions: Mapping[str, torch.Tensor], field: str
) -> dict[str, float]:
    """Each steered emotion's pairs' `field`, the mean over the languages that score it."""
    return {
        e: float(np.mean(found))
        for e in directions
        if (found := [getattr(lang.emotions[e], field) for lang in languages.values() if e in lang.emotions])
    }


def _mean(values: list[float]) -> float | None:
    return float(np.mean(values)) if values else None


def _wilcoxon(excess: list[float]) -> float | None:
    """One-sided p of excess > 0 across emotions (exact for small samples); None when every excess is 0."""
    if not any(excess):
        return None
    return float(wilcoxon(excess, alternative="greater").pvalue)
