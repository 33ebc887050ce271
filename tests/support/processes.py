"""Finding a process's children through /proc, for tests that start `meterline serve`."""

from __future__ import annotations

from pathlib import Path


def spawned_children(pid: int, *, proc: Path = Path("/proc")) -> list[int]:
    """The children of `pid` started by multiprocessing's spawn (uvicorn's workers), not
    its helpers. Threads and children come and go while this reads: one that has gone
    between listing and reading is passed over, not an error."""
    out = []
    for task in sorted((proc / str(pid) / "task").iterdir()):
        try:
            children = (task / "children").read_text().split()
        except (FileNotFoundError, ProcessLookupError):
            continue
        for child in children:
            try:
                cmdline = (proc / child / "cmdline").read_bytes()
            except (FileNotFoundError, ProcessLookupError):
                continue
            if b"spawn_main" in cmdline:
                out.append(int(child))
    return out
