"""Mosquitto helpers for tests and benchmarks: a private broker that can be stopped and
restarted, and removing the retained messages a run left on a shared broker."""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from ntpmon.common.errors import NtpmonError
from ntpmon.mqttcm.connection import BrokerEndpoint
from ntpmon.testing.debian import ensure_command

READY_TIMEOUT_S = 10.0


class MosquittoError(NtpmonError):
    """mosquitto is missing or did not start listening."""


def clear_retained(endpoint: BrokerEndpoint, topics: Sequence[str]) -> None:
    """Remove retained messages (an empty retained payload deletes them)."""
    client = paho.Client(
        CallbackAPIVersion.VERSION2, client_id=f"clean-{secrets.token_hex(4)}", protocol=paho.MQTTv5
    )
    client.connect(endpoint.host, endpoint.port)
    client.loop_start()
    for topic in topics:
        client.publish(topic, b"", qos=1, retain=True).wait_for_publish(5)
    client.disconnect()
    client.loop_stop()


def free_tcp_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


class PrivateBroker:
    """A Mosquitto of our own on a free loopback port (never the shared one)."""

    def __init__(self, workdir: Path, extra_config: str = "") -> None:
        self.port = free_tcp_port()
        self.config = workdir / "mosquitto.conf"
        self.config.write_text(
            f"listener {self.port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
            # as root, mosquitto would switch to its own user, which cannot read our temp dir
            + ("user root\n" if os.geteuid() == 0 else "")
            + extra_config
        )
        self.log = workdir / "mosquitto.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> BrokerEndpoint:
        return BrokerEndpoint("127.0.0.1", self.port)

    def start(self) -> None:
        """Start (again, on the same port) and return once it accepts connections."""
        binary = ensure_command("mosquitto", package="mosquitto")
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(  # noqa: S603 (fixed argv, our own config)
                [binary, "-c", str(self.config)], stdout=log, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + READY_TIMEOUT_S
        while not self._accepting():
            if time.monotonic() > deadline:
                raise MosquittoError(f"mosquitto did not listen on port {self.port}")
            time.sleep(0.02)

    def _accepting(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise MosquittoError(f"mosquitto exited: {self.log.read_text()}")
        with socket.socket() as sock:
            return sock.connect_ex(("127.0.0.1", self.port)) == 0

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)
        self.process = None
