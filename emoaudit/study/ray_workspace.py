"""What a study needs around Ray: a cluster address checked within a bounded time before `ray.init` (which has
no overall timeout of its own and retries an unreachable address for minutes), and each worker's audit folder,
named per study and model so that a retried task resumes its killed attempt's folder and every exit path can
remove them. The folder is in the temporary directory of the node the task runs on (resolved there: a
driver's own, such as macOS's /var/folders/..., need not exist on a cluster's nodes)."""

from __future__ import annotations

import re
import socket
import tempfile
import uuid
from pathlib import Path

from emoaudit.errors import EmoauditError

# How long a study waits for a cluster's GCS port to answer (`--ray-connect-timeout`).
CONNECT_TIMEOUT_S = 10.0
_HOST_PORT = re.compile(r"^(?:ray://)?(?P<host>\[[^\]]+\]|[^:/\[\]]+):(?P<port>\d{1,5})$")


def check_reachable(address: str, timeout_s: float = CONNECT_TIMEOUT_S) -> None:
    """Raise EmoauditError unless a TCP connection to `address` (`HOST:PORT` or `ray://HOST:PORT`) opens
    within `timeout_s` seconds (more only for a slow name lookup). Other forms (`auto`) are left to Ray."""
    match = _HOST_PORT.match(address.strip())
    if match is None:
        return
    if not timeout_s > 0:
        raise EmoauditError(f"--ray-connect-timeout must be a positive number of seconds, not {timeout_s}")
    host, port = match["host"].strip("[]"), int(match["port"])
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            pass
    except OSError as exc:
        reason = "no answer" if isinstance(exc, TimeoutError) else (exc.strerror or type(exc).__name__)
        raise EmoauditError(
            f"cannot reach the Ray cluster at {address} within {timeout_s:g} s ({reason}); is `ray start --head` "
            "running there? (--ray-connect-timeout sets the wait)"
        ) from exc


def new_study_id() -> str:
    """A name for one run of a study, unique enough that two studies on a node never share folders."""
    return uuid.uuid4().hex[:12]


def study_root(study: str) -> Path:
    """This node's folder for the study run `study`'s worker folders; each node creates its own as needed."""
    return Path(tempfile.gettempdir()) / f"emoaudit-study-{study}"


def worker_folder(study: str, slug: str) -> Path:
    """Where a model's task audits on this node: the same for every attempt of the task."""
    return study_root(study) / slug
