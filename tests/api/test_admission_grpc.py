"""SubmitResults first, through a real mTLS server: with every handler thread busy, a waiting
submission runs before GetServers calls that arrived earlier, and all of them succeed."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from api_testkit import MONITOR_IP, running_api, seed, status_for
from sqlalchemy import func, select

from ntpmon.api.service import MonitorService
from ntpmon.db.tables import log_scores
from ntpmon.pb.monitor.v2 import monitor_manager_pb2 as pb

pytestmark = pytest.mark.db


class RecordingService(MonitorService):
    """The real service; records which RPC entered when, and can hold GetConfig."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.entered: list[str] = []
        self.hold = threading.Event()
        self.holding = threading.Event()
        self.hold.set()

    def get_config(self, request, call):
        self.entered.append("GetConfig")
        self.holding.set()
        assert self.hold.wait(10)
        return super().get_config(request, call)

    def get_servers(self, request, call):
        self.entered.append("GetServers")
        return super().get_servers(request, call)

    def submit_results(self, request, call):
        self.entered.append("SubmitResults")
        return super().submit_results(request, call)


def _wait_until(predicate, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.002)


def test_a_waiting_submission_overtakes_earlier_get_servers(db, clock, ca) -> None:
    seed(db, clock)
    with running_api(db, clock, ca, threads=1, service_class=RecordingService) as api:
        service = api.service
        assert isinstance(service, RecordingService)
        channel, stub = api.stub(api.client_cert())
        with channel, ThreadPoolExecutor(4) as pool:
            batch = stub.GetServers(pb.GetServersRequest(mon_id=MONITOR_IP))
            assert len(batch.servers) == 3
            clock.advance(5)
            submit = pb.SubmitResultsRequest(
                version=4,
                mon_id=MONITOR_IP,
                batch_id=batch.batch_id,
                list=[status_for(s) for s in batch.servers],
            )
            service.entered.clear()
            service.hold.clear()
            # the only handler thread is taken by a GetConfig that waits
            config = pool.submit(stub.GetConfig, pb.GetConfigRequest(mon_id=MONITOR_IP))
            assert service.holding.wait(10)
            # two GetServers queue first, then the submission
            work = [
                pool.submit(stub.GetServers, pb.GetServersRequest(mon_id=MONITOR_IP))
                for _ in range(2)
            ]
            _wait_until(lambda: api.scheduler.waiting == 2)
            submitted = pool.submit(stub.SubmitResults, submit)
            _wait_until(lambda: api.scheduler.waiting == 3)
            service.hold.set()
            assert submitted.result(timeout=10).ok
            assert config.result(timeout=10).ip_bytes == bytes([192, 0, 2, 10])
            for call in work:
                call.result(timeout=10)  # answered (nothing is due any more: empty batches)
    assert service.entered == ["GetConfig", "SubmitResults", "GetServers", "GetServers"]
    with db.connect() as conn:
        assert conn.execute(select(func.count()).select_from(log_scores)).scalar() == 3
    registry = api.metrics.registry
    labels = {"method": "SubmitResults"}
    assert registry.get_sample_value("monitorapi_rpc_queue_wait_seconds_count", labels) == 1
    # it sat in the queue until the held GetConfig let go
    assert registry.get_sample_value("monitorapi_rpc_queue_wait_seconds_sum", labels) > 0
