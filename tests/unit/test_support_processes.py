"""The test helper that finds `meterline serve`'s worker processes reads /proc while the
processes it reads are alive: a thread or a child that ends mid-walk must not fail it."""

from __future__ import annotations

from pathlib import Path

from tests.support.processes import spawned_children


def _task(root: Path, pid: int, tid: int, children: str | None) -> None:
    task = root / str(pid) / "task" / str(tid)
    task.mkdir(parents=True)
    if children is not None:
        (task / "children").write_text(children)


def _cmdline(root: Path, pid: int, cmdline: bytes | None) -> None:
    (root / str(pid)).mkdir(parents=True, exist_ok=True)
    if cmdline is not None:
        (root / str(pid) / "cmdline").write_bytes(cmdline)


def test_spawned_children_are_found_through_every_thread(tmp_path: Path) -> None:
    _task(tmp_path, 10, 10, "11 ")
    _task(tmp_path, 10, 12, "13 14")
    _cmdline(tmp_path, 11, b"python\0-c\0from multiprocessing.spawn import spawn_main\0")
    _cmdline(tmp_path, 13, b"python\0-c\0from multiprocessing.resource_tracker import main\0")
    _cmdline(tmp_path, 14, b"python\0-c\0from multiprocessing.spawn import spawn_main\0")
    assert spawned_children(10, proc=tmp_path) == [11, 14]


def test_a_thread_or_child_that_ends_mid_walk_is_passed_over(tmp_path: Path) -> None:
    # Thread 12 has gone (its directory listed, its children file not), as CI once saw.
    _task(tmp_path, 10, 10, "11")
    _task(tmp_path, 10, 12, None)
    _task(tmp_path, 10, 15, "16 17")
    _cmdline(tmp_path, 11, b"spawn_main")
    _cmdline(tmp_path, 16, None)  # child 16 exited between the two reads
    _cmdline(tmp_path, 17, b"spawn_main")
    assert spawned_children(10, proc=tmp_path) == [11, 17]
