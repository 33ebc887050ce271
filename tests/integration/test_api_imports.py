"""POST /api/v1/imports over HTTP: authentication, roles, tenant scoping, the JSON report."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from meterline.domain.enums import Role
from meterline.services.security import create_api_key
from meterline.services.tenants import create_tenant, get_tenant
from meterline.web.app import create_app
from tests.support.sheets import HINDI_HEADER, write_xlsx

ROWS = [
    HINDI_HEADER,
    ["A1", "Ram", "9876543210", "100", "01/01/2026", "F1"],
    ["A2", "X", "1", "1", "", "F1"],
]


@pytest.fixture
def client(runtime) -> TestClient:  # type: ignore[no-untyped-def]
    return TestClient(create_app(runtime))


def _key(sessions, slug: str, role: Role) -> str:  # type: ignore[no-untyped-def]
    with sessions() as s, s.begin():
        _, secret = create_api_key(s, get_tenant(s, slug), "test", role)
    return secret


def _upload(client: TestClient, key: str | None, path: Path, **form: str):  # type: ignore[no-untyped-def]
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    with path.open("rb") as f:
        return client.post(
            "/api/v1/imports", headers=headers, files={"file": (path.name, f)}, data=form
        )


def test_import_report_and_rejected_csv(client, sessions, tenant, tmp_path: Path) -> None:
    key = _key(sessions, "aligarh", Role.operator)
    resp = _upload(client, key, write_xlsx(tmp_path / "m.xlsx", ROWS))
    assert resp.status_code == 201, resp.text
    body = resp.json()
    assert (body["inserted"], body["rejected"]) == (1, 1)
    assert body["errors"][0]["row"] == 3 and body["errors"][0]["column"] == "मोबाइल नंबर"
    again = client.get(f"/api/v1/imports/{body['import_id']}", headers={"X-API-Key": key})
    assert again.status_code == 200 and again.json()["errors"] == body["errors"]
    csv_resp = client.get(
        f"/api/v1/imports/{body['import_id']}/rejected.csv", headers={"X-API-Key": key}
    )
    assert csv_resp.status_code == 200
    lines = csv_resp.text.lstrip("\ufeff").splitlines()
    assert lines[0].startswith("row,column,reason,खाता संख्या")
    assert lines[1].startswith("3,मोबाइल नंबर,") and ",A2,X,1," in lines[1]


def test_dry_run_and_mapping_via_form(client, sessions, tenant, tmp_path: Path) -> None:
    key = _key(sessions, "aligarh", Role.operator)
    path = tmp_path / "m.csv"
    path.write_text("Cons ID,Cell\nZ1,9876543210\n")
    resp = _upload(client, key, path, dry_run="true", mapping="account=Cons ID; mobile=Cell")
    assert (
        resp.status_code == 201 and resp.json()["inserted"] == 1 and resp.json()["dry_run"] is True
    )
    bad = _upload(client, key, path, mapping="acount=Cons ID")
    assert bad.status_code == 422 and "acount" in bad.json()["detail"]


def test_refused_file_is_422_with_the_reason(client, sessions, tenant, tmp_path: Path) -> None:
    key = _key(sessions, "aligarh", Role.operator)
    path = tmp_path / "x.xlsx"
    path.write_bytes(b"not a spreadsheet at all" * 10)
    resp = _upload(client, key, path)
    assert resp.status_code == 422 and "x.xlsx" in resp.json()["detail"]


def test_authentication_and_roles(client, sessions, tenant, tmp_path: Path) -> None:
    path = write_xlsx(tmp_path / "m.xlsx", ROWS)
    assert _upload(client, None, path).status_code == 401
    assert _upload(client, "ml_nope_nope", path).status_code == 401
    viewer = _key(sessions, "aligarh", Role.viewer)
    resp = _upload(client, viewer, path)
    assert resp.status_code == 403 and "operator" in resp.json()["detail"]


def test_another_tenants_import_is_not_found(client, sessions, tenant, tmp_path: Path) -> None:
    with sessions() as s, s.begin():
        create_tenant(
            s, slug="other", name="Other", country="IN", currency="INR", timezone="Asia/Kolkata"
        )
    mine = _key(sessions, "aligarh", Role.operator)
    theirs = _key(sessions, "other", Role.admin)
    import_id = _upload(client, mine, write_xlsx(tmp_path / "m.xlsx", ROWS)).json()["import_id"]
    assert (
        client.get(f"/api/v1/imports/{import_id}", headers={"X-API-Key": theirs}).status_code == 404
    )
    assert (
        client.get(
            f"/api/v1/imports/{import_id}/rejected.csv", headers={"X-API-Key": theirs}
        ).status_code
        == 404
    )


def test_upload_over_the_limit_is_413(client, runtime, sessions, tenant, tmp_path: Path) -> None:
    runtime.settings.import_max_bytes = 2000
    key = _key(sessions, "aligarh", Role.operator)
    path = tmp_path / "big.csv"
    path.write_text("Account No,Mobile\n" + "A1,9876543210\n" * 500)
    resp = _upload(client, key, path)
    assert resp.status_code == 413 and "METERLINE_IMPORT_MAX_BYTES" in resp.json()["detail"]


def test_health_ready_metrics(client) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").json() == {"status": "ready"}
    assert "python_info" in client.get("/metrics").text
