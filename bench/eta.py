"""How right the progress lines' ETA is: for each stage, the ETA shown a quarter of the way in against the
time the stage really took from that moment on (issue 30: within ±50% for every stage over 30 s).

    python bench/eta.py record LOG -- .venv/bin/emoaudit scan smollm2-135m --profile quick --out OUT
    python bench/eta.py report LOG

`record` runs the command under a pseudo-terminal (the progress lines are drawn only on a terminal) and
writes every refresh of the line with the seconds since the start at which it was read; `report` prints a
Markdown table: per stage its duration (its "done in"), the last ETA shown at or before 25% of it, the
real remainder from that moment, and their ratio.
"""

from __future__ import annotations

import os
import pty
import re
import subprocess
import sys
import time

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
LINE = re.compile(r"^(?P<stage>.+?) [━╸╺ ]+ (?P<done>\d+)/(?P<total>\d+)(?: (?!done\b)[^\d\s]\S*)? (?P<rest>.*)$")
UNITS = {"h": 3600, "min": 60, "s": 1}


def record(log: str, command: list[str]) -> int:
    """Run `command` on a pseudo-terminal; each line read goes to `log` as `seconds<TAB>text`."""
    leader, follower = pty.openpty()
    env = dict(os.environ, COLUMNS="170", LINES="50", TERM="xterm-256color")
    proc = subprocess.Popen(command, stdin=follower, stdout=follower, stderr=follower, env=env)
    os.close(follower)
    start, pending = time.monotonic(), ""
    with open(log, "w", encoding="utf-8") as out:
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # the command closed the terminal
                break
            if not chunk:
                break
            pending += ANSI.sub("", chunk.decode("utf-8", "replace"))
            *lines, pending = re.split(r"[\r\n]", pending)
            now = time.monotonic() - start
            out.writelines(f"{now:.2f}\t{text.strip()}\n" for text in lines if text.strip())
            out.flush()
    return proc.wait()


def seconds(text: str) -> float:
    """`3 min 05 s` -> 185."""
    return float(sum(int(value) * UNITS[unit] for value, unit in re.findall(r"(\d+) (h|min|s)\b", text)))


def report(log: str) -> None:
    stages: dict[str, list[tuple[float, int, int, str]]] = {}
    with open(log, encoding="utf-8") as lines:
        for row in lines:
            at, text = row.rstrip("\n").split("\t", 1)
            if found := LINE.match(text):
                line = (float(at), int(found["done"]), int(found["total"]), found["rest"])
                stages.setdefault(found["stage"], []).append(line)
    print("| stage | total | duration (s) | 25% at (s) | done then | ETA shown (s) | real remainder (s) | ratio |")
    print("|---|---|---|---|---|---|---|---|")
    for stage, rows in stages.items():
        ends = [r for r in rows if r[3].startswith("done in")]
        if not ends:
            print(f"| {stage} | {rows[-1][2]} | unfinished | | | | | |")
            continue
        duration = seconds(ends[0][3].removeprefix("done in"))
        end = ends[0][0]
        start = end - duration
        shown = [r for r in rows if r[0] <= start + duration / 4 and "ETA" in r[3] and "…" not in r[3]]
        if not shown:
            print(f"| {stage} | {rows[-1][2]} | {duration:.0f} | {duration / 4:.0f} | no ETA yet | | | |")
            continue
        at, done, total, rest = shown[-1]
        eta, real = seconds(rest.split("ETA", 1)[1]), end - at
        ratio = f"{eta / real:.2f}" if real > 0 else ""
        print(f"| {stage} | {total} | {duration:.0f} | {at - start:.0f} | {done} | {eta:.0f} | {real:.0f} | {ratio} |")


if __name__ == "__main__":
    if sys.argv[1:2] == ["record"] and "--" in sys.argv:
        sys.exit(record(sys.argv[2], sys.argv[sys.argv.index("--") + 1 :]))
    if sys.argv[1:2] == ["report"]:
        report(sys.argv[2])
    else:
        sys.exit(__doc__)
