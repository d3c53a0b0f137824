"""Generated files must match what ``make generate`` produces from their sources today."""

from __future__ import annotations

from pathlib import Path

from ntpmon.devtools.codegen import render_schema_sql, write_protobuf
from ntpmon.pb.monitor.v2 import monitor_manager_pb2 as pb


def test_protobuf_code_is_fresh(repo_root: Path, tmp_path: Path) -> None:
    written = write_protobuf(repo_root / "proto", tmp_path)
    assert written, "protoc produced nothing"
    committed = repo_root / "src" / "ntpmon" / "pb"
    for fresh in written:
        rel = fresh.relative_to(tmp_path)
        assert (committed / rel).read_text() == fresh.read_text(), (
            f"src/ntpmon/pb/{rel} is stale: run `make generate` and commit the result"
        )


def test_schema_sql_is_fresh(repo_root: Path) -> None:
    assert (repo_root / "schema.sql").read_text() == render_schema_sql(), (
        "schema.sql is stale: run `make generate` and commit the result"
    )


def test_field_numbers_match_upstream() -> None:
    """The wire contract with Go agents: field numbers from spec/api.md §3.1."""
    expected = {
        "GetConfigRequest": {"mon_id": 1},
        "GetServersRequest": {"mon_id": 1},
        "GetConfigResponse": {
            "samples": 1,
            "ip_bytes": 2,
            "ip_nat_bytes": 3,
            "base_checks": 4,
            "mqtt_config": 5,
            "otlp_log_level": 6,
        },
        "MQTTConfig": {"host": 1, "port": 2, "jwt": 3, "prefix": 4},
        "Server": {"test_id": 1, "ticket": 2, "ip_bytes": 3, "trace": 4},
        "GetServersResponse": {"batch_id": 1, "config": 2, "servers": 3},
        "SubmitResultsRequest": {"version": 1, "mon_id": 2, "list": 3, "batch_id": 4},
        "SubmitResultsResponse": {"ok": 1},
        "ServerStatus": {
            "test_id": 1,
            "ticket": 2,
            "ip_bytes": 3,
            "error": 4,
            "no_response": 5,
            "ts": 6,
            "offset": 7,
            "rtt": 8,
            "stratum": 9,
            "leap": 10,
        },
        "NTPPacket": {"source_ip_bytes": 1, "destination_ip_bytes": 2, "t1": 3, "t4": 4, "data": 5},
    }
    for message, fields in expected.items():
        descriptor = pb.DESCRIPTOR.message_types_by_name[message]
        assert {f.name: f.number for f in descriptor.fields} == fields, message
    service = pb.DESCRIPTOR.services_by_name["MonitorService"]
    assert service.full_name == "monitor.v2.MonitorService"
    assert [m.name for m in service.methods] == ["GetConfig", "GetServers", "SubmitResults"]
