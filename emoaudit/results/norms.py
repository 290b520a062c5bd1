"""What `--norms FILE` adds to results.json: the vectors' principal components against human ratings."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class NormCorrelation:
    """Spearman's rho between the emotion vectors' scores on one principal component and one rating."""

    component: int  # 1-based; a component's sign is arbitrary (SVD), so is rho's: |rho| is the alignment
    rating: str  # "valence" or "arousal"
    rho: float
    ci_low: float  # 95% interval
    ci_high: float
    p_value: float  # two-sided, against rho = 0


@dataclass(frozen=True)
class MethodNorms:
    """One method's vectors at the emotion layer."""

    explained_variance: list[float]  # share of the vectors' variance on each component reported
    correlations: list[NormCorrelation]


@dataclass(frozen=True)
class Norms:
    """A user-supplied lexicon (NRC VAD or Warriner et al.) looked up at the audit's emotion words."""

    file: str  # as given on the command line
    sha256: str
    layout: str  # "nrc-vad" or "warriner"
    entries: int  # words in the file
    matched: list[str]  # the audit's emotions the file rates: the n of every correlation
    missing: list[str]  # those it does not
    layer: int  # the emotion layer
    statistic: str  # the correlation and its interval, in words
    methods: dict[str, MethodNorms]
