"""`--norms FILE`: a user's valence/arousal lexicon in the NRC VAD or Warriner et al. layout, read strictly
before any model loads, and the vectors' principal components correlated with it.

tests/data/norms-nrc-vad.txt and norms-warriner.csv hold invented ratings written for these tests (16 of the
default audit's 20 emotions and four other words, the same numbers in both, 0..1 and 1..9); no published
norms are copied (their licences allow research or non-commercial use only)."""

from __future__ import annotations

import io
import json
import math
from pathlib import Path

import numpy as np
import pytest
from rich.console import Console

import emoaudit
from emoaudit.analysis.norms import Lexicon, check_coverage, norms_alignment, read_norms, spearman_interval
from emoaudit.errors import EmoauditError
from emoaudit.results.reading import read_results
from emoaudit.spec import load_spec
from tests.conftest import run_cli

DATA = Path(__file__).parent / "data"
NRC, WARRINER = DATA / "norms-nrc-vad.txt", DATA / "norms-warriner.csv"
TINY_SPEC_PATH = DATA / "tiny-audit.toml"
DEFAULT_EMOTIONS = load_spec(None).emotion_names


def test_both_layouts_read_the_same_ratings_with_or_without_the_header(tmp_path: Path) -> None:
    nrc, warriner = read_norms(NRC), read_norms(WARRINER)
    assert (nrc.layout, warriner.layout) == ("nrc-vad", "warriner")
    assert len(nrc.ratings) == len(warriner.ratings) == 20
    assert nrc.ratings["happy"] == (0.822, 0.688) and warriner.ratings["happy"] == (7.58, 6.5)
    for word, (v, a) in nrc.ratings.items():  # the Warriner fixture is the NRC one on its 1..9 scale
        assert warriner.ratings[word] == pytest.approx((1 + 8 * v, 1 + 8 * a), abs=0.006)
    headerless = tmp_path / "vad.txt"
    headerless.write_text("".join(NRC.read_text().splitlines(keepends=True)[1:]))
    assert read_norms(headerless).ratings == nrc.ratings
    # v2.1's header and its -1..1 scale, a multi-word term, a different case, Windows line ends
    v2 = tmp_path / "v2.txt"
    v2.write_bytes(b"term\tvalence\tarousal\tdominance\r\nHappy\t0.9\t0.3\t0.2\r\nin love\t0.8\t0.6\t0.1\r\n")
    assert read_norms(v2).ratings == {"happy": (0.9, 0.3), "in love": (0.8, 0.6)}


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "neither the NRC VAD layout"),
        (b"happy,0.8,0.5\n", "neither the NRC VAD layout"),
        (b"happy\t0.8\t0.5\n", "line 1: 3 tab-separated fields, not the NRC VAD layout's 4"),
        (b"Word\tValence\tArousal\tDominance\nhappy\t0.8\thigh\t0.5\n", "line 2: arousal 'high' is not a number"),
        (b"happy\t0.8\t0.5\t0.5\nsad\t0.1\tnan\t0.5\n", "line 2: arousal 'nan' is not a number"),
        (b"happy\thigh\t0.5\t0.5\n", "line 1: valence 'high' is not a number"),
        (b"happy\t0.8\t0.5\t0.5\nHappy\t0.7\t0.5\t0.5\n", "line 2: 'Happy' is rated twice, with different values"),
        (b"Word\tValence\tArousal\tDominance\n", "no rated word in it"),
        (b"happy\t0.8\t0.5\t0.5\n\xff\n", "not UTF-8 text"),
        (b",Word,V.Mean.Sum,A.Mean.Sum\n1,happy,8.1\n", "line 2: A.Mean.Sum '' is not a number"),
        (b"Word,V.Mean.Sum,A.Mean.Sum\n,8.1,6.0\n", "line 2: no Word"),
        (b"Word,V.Mean.Sum,A.Mean\nhappy,8.1,6.0\n", "neither the NRC VAD layout"),
    ],
)
def test_a_bad_file_is_refused_in_one_line_naming_the_problem(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "norms.txt"
    path.write_bytes(content)
    with pytest.raises(EmoauditError, match=message):
        read_norms(path)


def test_a_missing_file_or_a_directory_is_refused(tmp_path: Path) -> None:
    with pytest.raises(EmoauditError, match="no such file"):
        read_norms(tmp_path / "absent.txt")
    with pytest.raises(EmoauditError, match="cannot read it"):
        read_norms(tmp_path)


def test_a_lexicon_that_rates_too_few_of_the_emotions_is_refused() -> None:
    few = Lexicon("few.txt", "0" * 64, "nrc-vad", {"happy": (0.9, 0.5), "sad": (0.1, 0.3), "calm": (0.7, 0.1)})
    with pytest.raises(EmoauditError, match=r"rates 3 of the audit's 20 emotion words \(happy, sad, calm\)"):
        check_coverage(few, DEFAULT_EMOTIONS)
    check_coverage(read_norms(NRC), DEFAULT_EMOTIONS)


def test_the_interval_is_fisher_z_with_the_bonett_wright_variance() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=20)
    y = x + rng.normal(size=20)
    rho, low, high, p = spearman_interval(x, y)
    half = 1.959964 * math.sqrt((1 + rho**2 / 2) / 17)
    assert (low, high) == pytest.approx((math.tanh(math.atanh(rho) - half), math.tanh(math.atanh(rho) + half)))
    assert low < rho < high and 0 < p < 0.05
    assert spearman_interval(x, x)[:3] == pytest.approx((1.0, 1.0, 1.0), abs=1e-3)


def test_components_that_follow_the_ratings_correlate_with_them() -> None:
    """Vectors built so that their widest direction is the lexicon's valence and the next its arousal:
    PC1 ranks the emotions as valence does, PC2 as arousal does; the unrated emotions are left out."""
    lexicon = read_norms(NRC)
    rng = np.random.default_rng(1)
    rated = [lexicon.ratings.get(e, (0.5, 0.5)) for e in DEFAULT_EMOTIONS]
    valence, arousal = (np.array([r[i] for r in rated]) for i in (0, 1))
    basis = np.linalg.qr(rng.normal(size=(64, 3)))[0].T
    vectors = 10 * np.outer(valence - 0.5, basis[0]) + 3 * np.outer(arousal - 0.5, basis[1])
    vectors += 0.01 * rng.normal(size=vectors.shape)
    norms = norms_alignment(lexicon, DEFAULT_EMOTIONS, {"comprehension": vectors, "generation": -vectors}, layer=7)
    assert norms.missing == ["exasperated", "blissful", "anxious", "grateful"] and len(norms.matched) == 16
    assert norms.layer == 7 and norms.entries == 20 and norms.layout == "nrc-vad"
    by = {(c.component, c.rating): c for c in norms.methods["comprehension"].correlations}
    assert abs(by[1, "valence"].rho) > 0.99 and abs(by[2, "arousal"].rho) > 0.99
    assert abs(by[1, "arousal"].rho) < 0.7 and by[1, "valence"].p_value < 1e-6
    assert all(c.ci_low <= c.rho <= c.ci_high for c in by.values())
    flipped = {(c.component, c.rating): c.rho for c in norms.methods["generation"].correlations}
    assert {k: abs(v) for k, v in flipped.items()} == pytest.approx({k: abs(c.rho) for k, c in by.items()})


def test_a_bad_norms_file_stops_the_scan_before_the_model_loads(tmp_path: Path) -> None:
    bad = tmp_path / "norms.tsv"
    bad.write_text("happy\t0.8\n")
    out = tmp_path / "out"
    # A model that would be pulled if it were loaded: the refusal must come first.
    proc = run_cli("scan", "qwen2.5-coder-1.5b", "--norms", str(bad), "--out", str(out), "--profile", "quick")
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.strip().splitlines() == [
        f"emoaudit: error: --norms {bad}: line 1: 2 tab-separated fields, not the NRC VAD layout's 4 "
        "(word, valence, arousal, dominance)"
    ]
    assert not (out / "run.json").exists()


def test_a_bad_norms_file_stops_a_study_before_any_model_is_audited(tmp_path: Path) -> None:
    """Every model's bad input: one line, exit 2, nothing audited (the study takes --norms from the table)."""
    few = tmp_path / "few.tsv"
    few.write_text("happy\t0.8\t0.5\t0.5\nsad\t0.1\t0.3\t0.2\n")
    out = tmp_path / "study"
    proc = run_cli("study", "qwen2.5-coder-1.5b", "--norms", str(few), "--out", str(out), "--profile", "quick")
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.strip().splitlines() == [
        f"emoaudit: error: --norms {few}: rates 2 of the audit's 20 emotion words (happy, sad); "
        "a correlation needs at least 4"
    ]
    assert not out.exists()


def test_an_audit_with_norms_records_them_and_the_report_shows_them(tmp_path: Path) -> None:
    """An extraction of a tiny model, then the same audit resumed with each layout: the stage is reused and
    the norms are computed from its vectors; without norms the report says none were given."""
    from tests.test_api import eos_free_tiny

    model = eos_free_tiny(tmp_path / "model")
    out = tmp_path / "out"
    options = dict(spec_path=TINY_SPEC_PATH, device="cpu", dtype="float32", stages=("extraction",))
    plain = emoaudit.audit(str(model), "tiny", out, console=Console(file=io.StringIO()), **options)
    assert plain.norms is None and "norms" not in json.loads((out / "results.json").read_text())
    assert "No human norms were given" in (out / "report.html").read_text(encoding="utf-8")
    correlations = {}
    for path, layout in ((NRC, "nrc-vad"), (WARRINER, "warriner")):
        results = emoaudit.audit(str(model), "tiny", out, console=Console(file=io.StringIO()), norms=path, **options)
        assert results.stages == plain.stages and results.norms is not None
        assert results.norms.layout == layout and results.norms.matched == ["happy", "calm", "sad", "angry"]
        assert results.norms.layer == plain.stages.extraction.layer  # type: ignore[union-attr]
        assert set(results.norms.methods) == {"comprehension", "generation"}
        assert read_results(out / "results.json").norms == results.norms  # schema-valid, read back whole
        report = (out / "report.html").read_text(encoding="utf-8")
        assert "Against human norms" in report and "No human norms were given" not in report
        first = results.norms.methods["comprehension"].correlations[0]
        assert f"{first.rho:.2f} [{first.ci_low:.2f}, {first.ci_high:.2f}]" in report
        correlations[layout] = results.norms.methods
    assert correlations["nrc-vad"] == correlations["warriner"]  # the same ranks on another scale
