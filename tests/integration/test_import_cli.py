"""The import as a person runs it: the `meterline` command, a real process, SIGKILL midway."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from sqlalchemy import func, select
from typer.testing import CliRunner

from meterline.cli import app
from meterline.config import Settings
from meterline.runtime import open_runtime
from meterline.store.models import Account, Tenant
from tests.support.sheets import HINDI_HEADER, write_csv, write_xlsx
from tests.support.snapshot import master_snapshot

runner = CliRunner()


def _cli(database_url: str, *args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args), env={"METERLINE_DATABASE_URL": database_url})
    return result.exit_code, result.stdout, result.stderr


def _make_tenant(database_url: str) -> None:
    code, _out, err = _cli(
        database_url, "tenant", "create", "aligarh", "--name", "Aligarh",
        "--country", "IN", "--currency", "INR", "--timezone", "Asia/Kolkata",
    )  # fmt: skip
    assert code == 0, err


def test_import_json_report(database_url: str, tmp_path: Path) -> None:
    _make_tenant(database_url)
    rows = [
        HINDI_HEADER,
        ["A1", "Ram", "98765 43210", "100", "01/01/2026", "F1"],
        ["A2", "X", "bad", "1", "", "F1"],
    ]
    path = write_xlsx(tmp_path / "m.xlsx", rows)
    code, out, _ = _cli(database_url, "import", str(path), "--tenant", "aligarh", "--json")
    assert code == 0
    report = json.loads(out)
    assert {k: report[k] for k in ("inserted", "updated", "unchanged", "rejected")} == {
        "inserted": 1, "updated": 0, "unchanged": 0, "rejected": 1,
    }  # fmt: skip
    assert report["errors"] == [
        {"row": 3, "column": "मोबाइल नंबर", "value": "bad", "reason": report["errors"][0]["reason"]}
    ]
    code, out, _ = _cli(database_url, "import", str(path), "--tenant", "aligarh", "--dry-run")
    assert code == 0 and "would import" in out and "1 unchanged" in out


def test_refused_file_exits_non_zero_with_the_reason(database_url: str, tmp_path: Path) -> None:
    _make_tenant(database_url)
    path = tmp_path / "notes.csv"
    path.write_text("hello\nworld\n")
    code, _, err = _cli(database_url, "import", str(path), "--tenant", "aligarh")
    assert code == 1 and "no recognisable account column" in err
    code, _, err = _cli(database_url, "import", str(path), "--tenant", "nosuch")
    assert code == 1 and "no tenant 'nosuch'" in err


def test_unknown_tenant_and_bad_mapping(database_url: str, tmp_path: Path) -> None:
    path = write_csv(tmp_path / "m.csv", [["Account No", "Mobile"], ["1", "9876543210"]])
    code, _, err = _cli(
        database_url, "import", str(path), "--tenant", "aligarh", "--map", "acount=B"
    )
    assert code == 2 and "unknown field(s) in mapping: acount" in err


def test_killed_import_then_rerun_equals_one_clean_run(database_url: str, tmp_path: Path) -> None:
    """SIGKILL a real `meterline import` midway, run it again: same state as a clean run."""
    rows = [["Account No", "Name", "Mobile", "Dues", "Feeder", "Meter No"]]
    rows += [
        [f"K{i:05d}", f"Name {i}", f"98{i:08d}", f"{i}.50", f"F{i % 7}", f"M{i}"]
        for i in range(6000)
    ]
    path = write_csv(tmp_path / "big.csv", rows)
    _make_tenant(database_url)
    env = {
        **os.environ,
        "METERLINE_DATABASE_URL": database_url,
        "METERLINE_IMPORT_BATCH_SIZE": "200",
    }
    cmd = [sys.executable, "-m", "meterline.cli", "import", str(path), "--tenant", "aligarh"]
    rt = open_runtime(Settings(database_url=database_url))
    try:
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 60
        done = 0
        while time.monotonic() < deadline:
            with rt.sessions() as s:
                done = s.scalar(select(func.count()).select_from(Account)) or 0
            if done >= 400 or proc.poll() is not None:
                break
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert 0 < done < 6000, f"the import was not caught midway ({done} rows)"
        subprocess.run(cmd, env=env, check=True, capture_output=True)
        with rt.sessions() as s:
            tenant_id = s.scalar(select(Tenant.id).where(Tenant.slug == "aligarh"))
        assert tenant_id is not None
        resumed = master_snapshot(rt.sessions, tenant_id)
    finally:
        rt.close()

    clean_url = f"sqlite:///{tmp_path / 'clean.db'}"
    assert _cli(clean_url, "db", "upgrade")[0] == 0
    _make_tenant(clean_url)
    subprocess.run(
        cmd, env={**env, "METERLINE_DATABASE_URL": clean_url}, check=True, capture_output=True
    )
    clean_rt = open_runtime(Settings(database_url=clean_url))
    try:
        clean = master_snapshot(clean_rt.sessions, 1)
    finally:
        clean_rt.close()
    assert len(clean) == 6001
    assert resumed == clean
