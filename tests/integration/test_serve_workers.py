"""`meterline serve --workers 2`: two web processes on one database take interleaved event
batches for the same meters, and the one dispatcher (in the parent) sends the alerts."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta

import httpx
from sqlalchemy import func, select

from meterline.domain.enums import MessageStatus
from meterline.runtime import Runtime
from meterline.services.tenants import set_quiet_hours
from meterline.store.models import Message, MeterAlert, Tenant
from tests.support.meter_fleet import add_meter, balances_by_serial, make_fleet
from tests.support.ports import free_port
from tests.support.processes import spawned_children

METERS = 10


def test_two_web_processes_ingest_the_same_meters_and_one_dispatcher_sends(
    runtime: Runtime, database_url: str
) -> None:
    with runtime.sessions() as s, s.begin():
        fleet = make_fleet(s)
        for i in range(METERS):
            add_meter(s, fleet.tenant_id, serial=f"C-{i}", account=f"C-AC-{i}", name=f"c{i}",
                      language="en", phone=f"+9198100000{i:02d}")  # fmt: skip
        # No quiet hours: the low-balance messages go at once, whatever the hour.
        tenant = s.get(Tenant, fleet.tenant_id)
        assert tenant is not None
        set_quiet_hours(s, tenant, start="00:00", end="00:00")
    now = datetime.now(UTC)
    start = now - timedelta(minutes=30)
    # Balances fall from 300 to 13: one low-balance episode per meter, in any arrival order.
    lines = [
        f'{{"type":"balance","meter":"C-{i}","at":"{(start + timedelta(minutes=k)).isoformat()}",'
        f'"balance":{300_00 - k * 1_000}}}'
        for k in range(30)
        for i in range(METERS)
    ]
    batches = ["\n".join(lines[n::6]) for n in range(6)]
    env = {
        **os.environ,
        "METERLINE_DATABASE_URL": database_url,
        "METERLINE_LOG_LEVEL": "WARNING",
        "METERLINE_SECRET_KEY": "",  # serve makes one for all its workers
    }
    proc, base = _serve_two_workers(env)
    try:
        assert len(spawned_children(proc.pid)) == 2
        answers: list[int] = []
        headers = {
            "Authorization": f"Bearer {fleet.keys['operator']}",
            "Content-Type": "application/x-ndjson",
        }

        def post(body: str) -> None:
            with httpx.Client(base_url=base, headers=headers, timeout=60) as client:
                answers.append(client.post("/api/v1/events", content=body).status_code)

        threads = [threading.Thread(target=post, args=(b,)) for b in batches]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert answers == [200] * len(batches)
        # The dispatcher in the parent sends each alert's message (sandbox channel).
        deadline = time.monotonic() + 60
        while _unsent(runtime) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert _unsent(runtime) == 0
    finally:
        proc.terminate()
        proc.wait(30)
    with runtime.sessions() as s:
        balances = balances_by_serial(s, "C-%")
        assert balances == {f"C-{i}": 300_00 - 29 * 1_000 for i in range(METERS)}
        assert s.scalar(select(func.count()).select_from(MeterAlert)) == METERS
        assert s.scalar(select(func.count()).select_from(Message)) == METERS


def _serve_two_workers(env: dict[str, str]) -> tuple[subprocess.Popen[bytes], str]:
    """Start `meterline serve --workers 2` and wait until both workers run and it answers.
    The port is looked up free, then bound by the child: if something took it in between,
    serve exits, and this tries another port rather than fail the test."""
    for _attempt in range(3):
        port = free_port()
        proc = subprocess.Popen(
            [sys.executable, "-m", "meterline.cli", "serve", "--port", str(port), "--workers", "2"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while proc.poll() is None and time.monotonic() < deadline:
            if len(spawned_children(proc.pid)) >= 2 and _answers(base):
                return proc, base
            time.sleep(0.1)
        still_starting = proc.poll() is None
        proc.terminate()
        proc.wait(30)
        assert not still_starting, "serve --workers 2 did not come up in 60 s"
    raise AssertionError("serve --workers 2 exited three times on start")


def _answers(base: str) -> bool:
    try:
        return httpx.get(f"{base}/healthz", timeout=1).status_code == 200
    except httpx.TransportError:
        return False


def _unsent(runtime: Runtime) -> int:
    with runtime.sessions() as s:
        return int(
            s.scalar(
                select(func.count())
                .select_from(Message)
                .where(Message.status.in_((MessageStatus.queued, MessageStatus.sending)))
            )
            or 0
        )
