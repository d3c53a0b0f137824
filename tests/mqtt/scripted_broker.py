"""A minimal MQTT v5 broker peer that can send DISCONNECT 0x8E (Session Taken Over).

Mosquitto 2.0.11 (Debian 12, the shared test broker) closes a taken-over connection without
sending the v5 DISCONNECT packet, so the reason code the takeover back-off keys on never reaches
a client there. This peer speaks just enough MQTT v5 over a real loopback socket (CONNACK,
SUBACK, PUBACK, PINGRESP) for paho to run its normal code path, and sends the DISCONNECT a
newer broker sends when another client takes the session over.
"""

from __future__ import annotations

import socket
import threading


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value % 128, value // 128
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _read_exact(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise ConnectionError("peer closed")
        data += chunk
    return data


def _read_packet(sock: socket.socket) -> tuple[int, bytes]:
    header = _read_exact(sock, 1)[0]
    length, shift = 0, 0
    while True:
        byte = _read_exact(sock, 1)[0]
        length |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            break
    return header, _read_exact(sock, length)


def _skip_varint(data: bytes, pos: int) -> tuple[int, int]:
    value, shift = 0, 0
    while True:
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, pos


def _suback(body: bytes) -> bytes:
    packet_id = body[:2]
    props_len, pos = _skip_varint(body, 2)
    pos += props_len
    codes = bytearray()
    while pos < len(body):
        topic_len = int.from_bytes(body[pos : pos + 2], "big")
        pos += 2 + topic_len
        codes.append(body[pos] & 0x03)  # granted QoS
        pos += 1
    payload = packet_id + b"\x00" + bytes(codes)
    return b"\x90" + _varint(len(payload)) + payload


class ScriptedBroker:
    """Accepts connections one at a time; :meth:`take_over` ends the current one with 0x8E."""

    def __init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._listener.getsockname()[1])
        self._lock = threading.Lock()
        self._current: socket.socket | None = None
        self.connects = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, name="scripted-broker", daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        try:
            while True:
                header, body = _read_packet(conn)
                kind = header & 0xF0
                if kind == 0x10:  # CONNECT
                    with self._lock:
                        self._current = conn
                        self.connects += 1
                    conn.sendall(b"\x20\x03\x00\x00\x00")
                elif kind == 0x80:  # SUBSCRIBE
                    conn.sendall(_suback(body))
                elif kind == 0x30 and (header >> 1) & 0x03 == 1:  # PUBLISH QoS 1
                    topic_len = int.from_bytes(body[:2], "big")
                    packet_id = body[2 + topic_len : 4 + topic_len]
                    conn.sendall(b"\x40\x02" + packet_id)
                elif kind == 0xC0:  # PINGREQ
                    conn.sendall(b"\xd0\x00")
                elif kind == 0xE0:  # DISCONNECT
                    return
        except (ConnectionError, OSError):
            return
        finally:
            conn.close()

    def take_over(self) -> None:
        """What a broker does when another client connects with the same client id."""
        with self._lock:
            conn, self._current = self._current, None
        if conn is not None:
            conn.sendall(b"\xe0\x02\x8e\x00")  # DISCONNECT, reason 0x8E, no properties
            conn.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self._stop.set()
        self._listener.close()
