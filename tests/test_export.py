"""Exports of an audit: the manifest and its verification, llama.cpp control vectors, steering-vectors files."""

from pathlib import Path

import numpy as np
import pytest
import torch
from gguf import GGUFReader
from safetensors import safe_open

from emoaudit.errors import EmoauditError
from emoaudit.export.control_vectors import export_gguf, export_safetensors
from emoaudit.export.manifest import verify, write_manifest
from emoaudit.results.identity import AuditIdentity, ModelContent, RunRecord
from emoaudit.vectors import EmotionVectors
from tests.conftest import run_cli
from tests.test_extraction import SPEC, fake_activations

IDENTITY = RunRecord(
    AuditIdentity(ModelContent("ab" * 32, None, "float32", None, None), "cd" * 32, "quick", 0, "all"), "tiny"
)
POLICY = "ef" * 32


def vectors(tmp_path: Path, layer: int = 2) -> Path:
    vecs = EmotionVectors.from_activations(fake_activations(n_layers=4), SPEC.emotion_names, SPEC.reference, 0.0)
    path = tmp_path / "out" / "vectors" / "comprehension.safetensors"
    vecs.chosen(layer, {"reference": "tiny", "model_type": "qwen2"}, SPEC.sha256).save(path)
    return path


def test_manifest_names_changed_missing_and_added_files(tmp_path: Path) -> None:
    out = tmp_path / "out"
    (out / "stages").mkdir(parents=True)
    (out / "samples.jsonl").write_text('{"text": "x"}\n')
    (out / "stages" / "steering.json").write_text("{}")
    write_manifest(out, IDENTITY, POLICY)
    assert verify(out) == []
    data = bytearray((out / "samples.jsonl").read_bytes())
    data[3] ^= 1  # one byte
    (out / "samples.jsonl").write_bytes(bytes(data))
    (out / "stages" / "steering.json").unlink()
    (out / "extra.txt").write_text("added later")
    assert [(d.kind, d.path) for d in verify(out)] == [
        ("changed", "samples.jsonl"),
        ("missing", "stages/steering.json"),
        ("added", "extra.txt"),
    ]


def test_verify_sees_links_and_special_files_and_never_follows_them(tmp_path: Path) -> None:
    """Issue 27: a file replaced by a link to an identical copy outside OUT, or an added FIFO or link,
    passed as "every file matches"."""
    import os

    out = tmp_path / "out"
    (out / "stages").mkdir(parents=True)
    (out / "results.json").write_text("{}")
    (out / "stages" / "extraction.json").write_text("[]")
    write_manifest(out, IDENTITY, POLICY)
    outside = tmp_path / "copy.json"
    outside.write_text("{}")
    (out / "results.json").unlink()
    (out / "results.json").symlink_to(outside)
    os.mkfifo(out / "pipe")  # hashing it by reading would block forever
    (out / "linked").symlink_to(tmp_path, target_is_directory=True)  # a folder outside: never walked
    (tmp_path / "elsewhere.txt").write_text("not in OUT")
    assert [(d.kind, d.path) for d in verify(out)] == [
        ("changed", "results.json"),
        ("added", "linked"),
        ("added", "pipe"),
    ]
    refused = run_cli("verify", str(out))
    assert (
        refused.returncode == 1
        and f"{out}: results.json changed since the manifest was written (and 2 more)" in refused.stdout
    )
    (out / "manifest.json").rename(tmp_path / "manifest.json")
    (out / "manifest.json").symlink_to(tmp_path / "manifest.json")
    with pytest.raises(EmoauditError, match="manifest.json is a link"):
        verify(out)


def test_verify_command_exit_status(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "results.json").write_text("{}")
    write_manifest(out, IDENTITY, POLICY)
    ok = run_cli("verify", str(out))
    assert ok.returncode == 0, ok.stderr
    (out / "results.json").write_text("{} ")
    changed = run_cli("verify", str(out))
    assert changed.returncode == 1 and "results.json changed" in changed.stdout
    bare = run_cli("verify", str(tmp_path))
    assert bare.returncode == 2 and "no manifest.json" in bare.stderr and "Traceback" not in bare.stderr


def test_verify_shows_a_hostile_file_name_inert_on_one_line(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "results.json").write_text("{}")
    write_manifest(out, IDENTITY, POLICY)
    (out / "a\x1b]8;;x\x07b\nc[red]").write_text("added after the manifest")
    added = run_cli("verify", str(out))
    assert added.returncode == 1 and "\x1b" not in added.stdout and "\x07" not in added.stdout
    assert "a\\x1b]8;;x\\x07b\\nc[red] added" in added.stdout and added.stdout.count("\n") == 1


def test_gguf_control_vector_reads_back_in_emoaudit_units(tmp_path: Path) -> None:
    vecs = EmotionVectors.load(vectors(tmp_path))
    path = tmp_path / "angry.gguf"
    export_gguf(vecs, "angry", [1, 3], "qwen2", path)
    reader = GGUFReader(path)
    assert reader.fields["general.architecture"].contents() == "controlvector"
    assert reader.fields["controlvector.model_hint"].contents() == "qwen2"
    assert reader.fields["controlvector.layer_count"].contents() == 2
    tensors = {t.name: np.array(t.data) for t in reader.tensors}
    assert sorted(tensors) == ["direction.1", "direction.3"]
    for layer in (1, 3):
        assert tensors[f"direction.{layer}"].shape == (16,)
        # llama.cpp's --control-vector-scaled FILE S adds S × direction.N: the delta of --strength S.
        np.testing.assert_allclose(2.5 * tensors[f"direction.{layer}"], vecs.delta("angry", layer, 2.5), rtol=1e-6)


def test_gguf_refuses_layer_zero(tmp_path: Path) -> None:
    with pytest.raises(EmoauditError, match="layer 0"):
        export_gguf(EmotionVectors.load(vectors(tmp_path)), "angry", [0, 2], "llama", tmp_path / "x.gguf")


def test_export_command_defaults_to_the_emotion_layer_and_refuses_bad_input(tmp_path: Path) -> None:
    vectors(tmp_path, layer=2)
    out = tmp_path / "out"
    proc = run_cli("export-vectors", str(out), "--emotion", "calm", "--out", str(tmp_path / "calm.gguf"))
    assert proc.returncode == 0, proc.stderr
    assert [t.name for t in GGUFReader(tmp_path / "calm.gguf").tensors] == ["direction.2"]
    for bad, message in (
        (["--emotion", "smug"], "unknown emotion"),
        (["--emotion", "calm", "--layers", "9"], "outside"),
        (["--emotion", "calm", "--layers", "two"], "comma-separated"),
    ):
        refused = run_cli("export-vectors", str(out), *bad, "--out", str(tmp_path / "bad.gguf"))
        assert refused.returncode == 2 and message in refused.stderr and "Traceback" not in refused.stderr
        assert not (tmp_path / "bad.gguf").exists()


def test_safetensors_export_is_a_layer_dict_in_strength_units(tmp_path: Path) -> None:
    vecs = EmotionVectors.load(vectors(tmp_path))
    path = tmp_path / "calm.safetensors"
    export_safetensors(vecs, "calm", [1, 2], path)
    with safe_open(str(path), framework="pt") as f:
        assert sorted(f.keys()) == ["1", "2"] and f.metadata()["layer_type"] == "decoder_block"
        torch.testing.assert_close(f.get_tensor("2"), vecs.delta("calm", 2, 1.0))
