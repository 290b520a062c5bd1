"""Files written so that an interruption never leaves a half-written result behind, readable by whoever
the user's umask lets read them, and writable whatever bytes a recorded path holds."""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import stat
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from emoaudit.errors import EmoauditError

_CHUNK = 1 << 20


def umask() -> int:
    """The process's umask. POSIX can only read it by setting it, so it is set back at once."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def share_like_umask(path: Path) -> None:
    """Give a file or directory made owner-only (by tempfile, or by safetensors' own atomic write) the mode
    open() and mkdir() would give it: 0666 or 0777 less the umask, so a shared, group-writable cache stays shared."""
    mode = 0o777 if path.is_dir() else 0o666
    os.chmod(path, mode & ~umask())


@contextmanager
def atomic_path(target: Path) -> Iterator[Path]:
    """Yield a temporary path beside `target`; it replaces `target` only if the block completes."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        share_like_umask(Path(tmp))  # after writing: safetensors replaces the file with an owner-only one
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


@contextmanager
def utf8_view(path: Path) -> Iterator[Path]:
    """`path`, or while the block runs a symbolic link to it under a UTF-8 name.

    tokenizers and safetensors open only UTF-8 paths; a checkpoint in a directory named in Latin-1
    (b"mod\\xe8le") is not one. What they map stays readable after the link is gone.
    """
    try:
        os.fsencode(path).decode("utf-8")
    except UnicodeDecodeError:
        with tempfile.TemporaryDirectory(prefix="emoaudit-link-") as tmp:
            link = Path(tmp) / "checkpoint"
            link.symlink_to(path.absolute())
            yield link
    else:
        yield path


def write_text(target: Path, text: str) -> None:
    """UTF-8 text. A lone surrogate, which UTF-8 cannot hold, is written as its escape `\\udcXX`: a path with a
    non-UTF-8 byte (b"mod\\xe8le", which os.fsdecode reads as "mod\\udce8le") stays unambiguous. Inside a JSON
    string that escape is JSON's own, so json.loads reads the same string back and os.fsencode the same bytes."""
    with atomic_path(target) as tmp:
        tmp.write_text(text, encoding="utf-8", errors="backslashreplace")


def write_json(target: Path, data: Any) -> None:
    """JSON with non-ASCII text as itself (evidence in other scripts stays readable); see `write_text`.

    Raises ValueError naming the first NaN or infinity (JSON has neither) by its key path; nothing is written.
    A statistic's degenerate case is recorded as null with its reason by the statistic itself: this is the
    backstop that keeps a missed one from becoming a file no JSON reader accepts."""
    try:
        text = json.dumps(data, indent=2, ensure_ascii=False, allow_nan=False)
    except ValueError as exc:
        where = non_finite_key(data)
        if where is None:
            raise
        raise ValueError(f"{target.name}: {where} is not a finite number; nothing was written") from exc
    write_text(target, text + "\n")


def non_finite_key(data: Any, where: str = "") -> str | None:
    """The key path (`a.b[2]`) of the first NaN or infinity in JSON-like `data`, or None."""
    if isinstance(data, float):
        return None if math.isfinite(data) else (where or "the value")
    items = data.items() if isinstance(data, dict) else enumerate(data) if isinstance(data, list | tuple) else ()
    for key, value in items:
        path = f"{where}[{key}]" if isinstance(key, int) else f"{where}.{key}" if where else str(key)
        found = non_finite_key(value, path)
        if found is not None:
            return found
    return None


def check_writable(target: Path) -> None:
    """Raise EmoauditError unless a file could be written at `target` (its missing folders created), so that
    a bad output path is known before an audit runs rather than after."""
    if target.is_dir():
        raise EmoauditError(f"cannot write {target}: it is a directory")
    folder = next(p for p in target.absolute().parents if p.exists())
    if not folder.is_dir():
        raise EmoauditError(f"cannot write {target}: {folder} is not a directory")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise EmoauditError(f"cannot write {target}: {folder} is not writable")


def write_with(target: Path, writer: Callable[[Path], None]) -> None:
    """Atomically write `target` with a function that writes to a given path (e.g. safetensors)."""
    with atomic_path(target) as tmp:
        writer(tmp)


def check_free_space(directory: Path, needed: int, what: str) -> None:
    """Raise EmoauditError when the file system holding `directory` has under `needed` bytes free: a pull
    or conversion that runs out half way ends in a library's error about something else (pip's "resume
    retries", a truncated safetensors file), never in the cause."""
    free = shutil.disk_usage(directory).free
    if free < needed:
        raise EmoauditError(
            f"{what} needs about {needed / 1e6:,.0f} MB free in {directory}, and {free / 1e6:,.0f} MB are free; "
            "free some space, or set EMOAUDIT_CACHE to a folder on a larger disk"
        )


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(_CHUNK):
            digest.update(block)
    return digest.hexdigest()


def tree_digests(root: Path, skip: frozenset[str] = frozenset()) -> dict[str, str]:
    """What every entry below `root` is, keyed by its POSIX path relative to `root`: a regular file by its
    sha256, anything else by a tag that no sha256 equals (`symlink -> TARGET`, `fifo`, `socket`, `device`).

    Links are never followed, to files or folders: a file replaced by a link to a copy elsewhere, or a folder
    linked in from outside, is not the file that was hashed. `skip` names relative paths left out."""
    found: dict[str, str] = {}
    for folder, dirs, files in os.walk(root, followlinks=False):
        here = Path(folder)
        for name in [*dirs, *files]:
            path = here / name
            relative = path.relative_to(root).as_posix()
            mode = path.lstat().st_mode
            if stat.S_ISDIR(mode) or relative in skip:
                continue
            found[relative] = sha256_file(path) if stat.S_ISREG(mode) else _entry_tag(path, mode)
    return dict(sorted(found.items()))


def _entry_tag(path: Path, mode: int) -> str:
    if stat.S_ISLNK(mode):
        return f"symlink -> {os.readlink(path)}"
    if stat.S_ISFIFO(mode):
        return "fifo"
    return "socket" if stat.S_ISSOCK(mode) else "device"
