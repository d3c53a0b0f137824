import datetime

from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class GetConfigRequest(_message.Message):
    __slots__ = ("mon_id",)
    MON_ID_FIELD_NUMBER: _ClassVar[int]
    mon_id: str
    def __init__(self, mon_id: _Optional[str] = ...) -> None: ...

class GetServersRequest(_message.Message):
    __slots__ = ("mon_id",)
    MON_ID_FIELD_NUMBER: _ClassVar[int]
    mon_id: str
    def __init__(self, mon_id: _Optional[str] = ...) -> None: ...

class MQTTConfig(_message.Message):
    __slots__ = ("host", "port", "jwt", "prefix")
    HOST_FIELD_NUMBER: _ClassVar[int]
    PORT_FIELD_NUMBER: _ClassVar[int]
    JWT_FIELD_NUMBER: _ClassVar[int]
    PREFIX_FIELD_NUMBER: _ClassVar[int]
    host: bytes
    port: int
    jwt: bytes
    prefix: bytes
    def __init__(self, host: _Optional[bytes] = ..., port: _Optional[int] = ..., jwt: _Optional[bytes] = ..., prefix: _Optional[bytes] = ...) -> None: ...

class GetConfigResponse(_message.Message):
    __slots__ = ("samples", "ip_bytes", "ip_nat_bytes", "base_checks", "mqtt_config", "otlp_log_level")
    SAMPLES_FIELD_NUMBER: _ClassVar[int]
    IP_BYTES_FIELD_NUMBER: _ClassVar[int]
    IP_NAT_BYTES_FIELD_NUMBER: _ClassVar[int]
    BASE_CHECKS_FIELD_NUMBER: _ClassVar[int]
    MQTT_CONFIG_FIELD_NUMBER: _ClassVar[int]
    OTLP_LOG_LEVEL_FIELD_NUMBER: _ClassVar[int]
    samples: int
    ip_bytes: bytes
    ip_nat_bytes: bytes
    base_checks: _containers.RepeatedScalarFieldContainer[bytes]
    mqtt_config: MQTTConfig
    otlp_log_level: str
    def __init__(self, samples: _Optional[int] = ..., ip_bytes: _Optional[bytes] = ..., ip_nat_bytes: _Optional[bytes] = ..., base_checks: _Optional[_Iterable[bytes]] = ..., mqtt_config: _Optional[_Union[MQTTConfig, _Mapping]] = ..., otlp_log_level: _Optional[str] = ...) -> None: ...

class Server(_message.Message):
    __slots__ = ("test_id", "ticket", "ip_bytes", "trace")
    TEST_ID_FIELD_NUMBER: _ClassVar[int]
    TICKET_FIELD_NUMBER: _ClassVar[int]
    IP_BYTES_FIELD_NUMBER: _ClassVar[int]
    TRACE_FIELD_NUMBER: _ClassVar[int]
    test_id: bytes
    ticket: bytes
    ip_bytes: bytes
    trace: bool
    def __init__(self, test_id: _Optional[bytes] = ..., ticket: _Optional[bytes] = ..., ip_bytes: _Optional[bytes] = ..., trace: _Optional[bool] = ...) -> None: ...

class GetServersResponse(_message.Message):
    __slots__ = ("batch_id", "config", "servers")
    BATCH_ID_FIELD_NUMBER: _ClassVar[int]
    CONFIG_FIELD_NUMBER: _ClassVar[int]
    SERVERS_FIELD_NUMBER: _ClassVar[int]
    batch_id: bytes
    config: GetConfigResponse
    servers: _containers.RepeatedCompositeFieldContainer[Server]
    def __init__(self, batch_id: _Optional[bytes] = ..., config: _Optional[_Union[GetConfigResponse, _Mapping]] = ..., servers: _Optional[_Iterable[_Union[Server, _Mapping]]] = ...) -> None: ...

class ServerStatus(_message.Message):
    __slots__ = ("test_id", "ticket", "ip_bytes", "error", "no_response", "ts", "offset", "rtt", "stratum", "leap")
    TEST_ID_FIELD_NUMBER: _ClassVar[int]
    TICKET_FIELD_NUMBER: _ClassVar[int]
    IP_BYTES_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    NO_RESPONSE_FIELD_NUMBER: _ClassVar[int]
    TS_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    RTT_FIELD_NUMBER: _ClassVar[int]
    STRATUM_FIELD_NUMBER: _ClassVar[int]
    LEAP_FIELD_NUMBER: _ClassVar[int]
    test_id: bytes
    ticket: bytes
    ip_bytes: bytes
    error: str
    no_response: bool
    ts: _timestamp_pb2.Timestamp
    offset: _duration_pb2.Duration
    rtt: _duration_pb2.Duration
    stratum: int
    leap: int
    def __init__(self, test_id: _Optional[bytes] = ..., ticket: _Optional[bytes] = ..., ip_bytes: _Optional[bytes] = ..., error: _Optional[str] = ..., no_response: _Optional[bool] = ..., ts: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., offset: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., rtt: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., stratum: _Optional[int] = ..., leap: _Optional[int] = ...) -> None: ...

class SubmitResultsRequest(_message.Message):
    __slots__ = ("version", "mon_id", "list", "batch_id")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    MON_ID_FIELD_NUMBER: _ClassVar[int]
    LIST_FIELD_NUMBER: _ClassVar[int]
    BATCH_ID_FIELD_NUMBER: _ClassVar[int]
    version: int
    mon_id: str
    list: _containers.RepeatedCompositeFieldContainer[ServerStatus]
    batch_id: bytes
    def __init__(self, version: _Optional[int] = ..., mon_id: _Optional[str] = ..., list: _Optional[_Iterable[_Union[ServerStatus, _Mapping]]] = ..., batch_id: _Optional[bytes] = ...) -> None: ...

class SubmitResultsResponse(_message.Message):
    __slots__ = ("ok",)
    OK_FIELD_NUMBER: _ClassVar[int]
    ok: bool
    def __init__(self, ok: _Optional[bool] = ...) -> None: ...

class NTPPacket(_message.Message):
    __slots__ = ("source_ip_bytes", "destination_ip_bytes", "t1", "t4", "data")
    SOURCE_IP_BYTES_FIELD_NUMBER: _ClassVar[int]
    DESTINATION_IP_BYTES_FIELD_NUMBER: _ClassVar[int]
    T1_FIELD_NUMBER: _ClassVar[int]
    T4_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    source_ip_bytes: bytes
    destination_ip_bytes: bytes
    t1: _timestamp_pb2.Timestamp
    t4: _timestamp_pb2.Timestamp
    data: bytes
    def __init__(self, source_ip_bytes: _Optional[bytes] = ..., destination_ip_bytes: _Optional[bytes] = ..., t1: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., t4: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., data: _Optional[bytes] = ...) -> None: ...
