"""The code a caller gets is the code the access log and ``monitorapi_rpc_duration_seconds``
record (issue 15, item 4): a refused batch id past year 9999 and an unexpected exception in
the service, on every protocol of the RPC port."""

from __future__ import annotations

import logging

import grpc
import pytest
from api_testkit import MONITOR_IP, RunningApi, running_api, seed
from rpc_clients import PROTOCOLS, Peer, RpcCallError, check_failure, rpc_client

from ntpmon.api.service import CallInfo, MonitorService
from ntpmon.pb.monitor.v2 import monitor_manager_pb2 as pb

pytestmark = pytest.mark.db

ACCESS_LOG = "ntpmon.api.access"
PAST_9999 = b"7" + b"Z" * 25


def recorded_codes(caplog: pytest.LogCaptureFixture, method: str) -> list[str]:
    """The ``code`` of every access log line of ``method`` captured so far."""
    return [r.code for r in caplog.records if r.name == ACCESS_LOG and r.method == method]


def failed_submit(api: RunningApi, protocol: str, request: pb.SubmitResultsRequest) -> RpcCallError:
    with (
        rpc_client(protocol, Peer(api.port, api.ca.root_pem(), api.client_cert())) as client,
        pytest.raises(RpcCallError) as err,
    ):
        client.call("SubmitResults", request)
    return err.value


def check_recorded(
    api: RunningApi, caplog: pytest.LogCaptureFixture, method: str, code: grpc.StatusCode
) -> None:
    """One access log line and one histogram observation, both with ``code``, none with OK."""
    assert recorded_codes(caplog, method) == [code.name]
    assert api.rpc_count(method, code.name) == 1
    assert api.rpc_count(method, "OK") == 0


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_batch_id_past_year_9999_is_invalid_argument_everywhere(protocol, db, clock, api, caplog):
    seed(db, clock)
    request = pb.SubmitResultsRequest(version=4, mon_id=MONITOR_IP, batch_id=PAST_9999)
    with caplog.at_level(logging.INFO, logger=ACCESS_LOG):
        failure = failed_submit(api, protocol, request)
    check_failure(protocol, failure, grpc.StatusCode.INVALID_ARGUMENT)
    assert failure.message == "invalid batch ID"
    check_recorded(api, caplog, "SubmitResults", grpc.StatusCode.INVALID_ARGUMENT)


class BrokenService(MonitorService):
    """A service with a bug: SubmitResults raises what no handler expects."""

    def submit_results(
        self, request: pb.SubmitResultsRequest, call: CallInfo
    ) -> pb.SubmitResultsResponse:
        raise KeyError("secret-detail-of-a-bug")


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_unexpected_exception_is_internal_in_answer_log_and_metric(protocol, db, clock, ca, caplog):
    seed(db, clock)
    request = pb.SubmitResultsRequest(version=4, mon_id=MONITOR_IP, batch_id=b"")
    with (
        running_api(db, clock, ca, service_class=BrokenService) as api,
        caplog.at_level(logging.INFO),
    ):
        failure = failed_submit(api, protocol, request)
        check_recorded(api, caplog, "SubmitResults", grpc.StatusCode.INTERNAL)
    check_failure(protocol, failure, grpc.StatusCode.INTERNAL)
    assert failure.message == "internal error"  # the bug's details stay in the server's log
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert [r.getMessage() for r in errors] == ["unexpected error in RPC handler"]
    assert errors[0].exc_info is not None and errors[0].exc_info[0] is KeyError
