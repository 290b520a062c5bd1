"""An audit folder's files as a tar archive, the form in which they travel from a Ray worker to the driver,
and written back under OUT/<slug>/ so that an interruption at any point leaves nothing half-written and
no stage file without the files its reuse reads."""

from __future__ import annotations

import contextlib
import io
import tarfile
from collections.abc import Iterable
from functools import partial
from pathlib import Path

from emoaudit.errors import EmoauditError
from emoaudit.storage import write_with


def pack(directory: Path, names: Iterable[str] | None = None) -> bytes | None:
    """The files under `directory` (those of `names`, relative POSIX paths, if given; files being written,
    `*.tmp`, never) as an uncompressed tar archive (safetensors do not compress); None if absent."""
    if not directory.is_dir():
        return None
    if names is None:
        names = (p.relative_to(directory).as_posix() for p in directory.rglob("*") if p.is_file())
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for name in sorted(n for n in names if not n.endswith(".tmp")):
            archive.add(directory / name, arcname=name)
    return buffer.getvalue()


def unpack(data: bytes, directory: Path) -> list[str]:
    """Write an archive's regular files under `directory`, each atomically, and return the names written.

    A file whose bytes `directory` already holds is not written again. The stages' files (stages/*.json)
    come after the files their reuse reads (vectors, stories, samples), and results.json last, so that an
    interrupted write never leaves a stage, or an audit, that looks finished without its evidence.

    Raises EmoauditError for a member that is not a plain file inside `directory`.
    """
    written = []
    with tarfile.open(fileobj=io.BytesIO(data), mode="r") as archive:
        for member in sorted(archive.getmembers(), key=_write_order):
            try:
                safe = tarfile.data_filter(member, str(directory))
            except tarfile.FilterError as exc:
                raise EmoauditError(f"refused an audit archive member {member.name!r}: {exc}") from exc
            # pack() writes relative names of regular files only; anything else did not come from it.
            if not safe.isfile() or safe.name != member.name:
                raise EmoauditError(f"refused an audit archive member {member.name!r}: not a relative regular file")
            source = archive.extractfile(member)
            assert source is not None  # a regular file always has contents
            payload = source.read()
            if not _holds(directory / safe.name, payload):
                write_with(directory / safe.name, partial(_write_bytes, data=payload))
                written.append(safe.name)
    return written


def salvage(folder: Path, out: Path) -> None:
    """Copy what an unfinished task's folder holds (its completed stages; files being written are left out)
    into OUT/<slug>/, so that the next run resumes from it. Nothing when the folder is gone."""
    with contextlib.suppress(EmoauditError, OSError, tarfile.TarError):  # a file replaced while it is read
        archive = pack(folder) if folder.is_dir() else None
        if archive is not None:
            unpack(archive, out)


def _write_order(member: tarfile.TarInfo) -> tuple[bool, bool]:
    return member.name.startswith("stages/") or member.name == "results.json", member.name == "results.json"


def _holds(path: Path, payload: bytes) -> bool:
    """Whether `path` is a file of exactly these bytes (its size read first: most differing files differ there)."""
    try:
        return path.is_file() and path.stat().st_size == len(payload) and path.read_bytes() == payload
    except OSError:
        return False


def _write_bytes(path: Path, *, data: bytes) -> None:
    path.write_bytes(data)
