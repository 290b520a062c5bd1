"""Files written so that an interruption never leaves a half-written result behind."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from emoaudit.errors import EmoauditError

_CHUNK = 1 << 20


@contextmanager
def atomic_path(target: Path) -> Iterator[Path]:
    """Yield a temporary path beside `target`; it replaces `target` only if the block completes."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    os.chmod(tmp, 0o644)  # mkstemp makes owner-only files; results are meant to be shared
    try:
        yield Path(tmp)
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_text(target: Path, text: str) -> None:
    """Atomically write `text` as UTF-8.

    A str from the operating system can hold lone surrogates (a path with a byte that is not UTF-8,
    read with surrogateescape), which UTF-8 cannot encode; they are written as the escape `\\udcff`,
    which in a JSON string reads back as the same str.
    """
    with atomic_path(target) as tmp:
        tmp.write_text(text, encoding="utf-8", errors="backslashreplace")


def write_json(target: Path, data: Any) -> None:
    write_text(target, json.dumps(data, indent=2, ensure_ascii=False, allow_nan=False) + "\n")


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


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(_CHUNK):
            digest.update(block)
    return digest.hexdigest()
