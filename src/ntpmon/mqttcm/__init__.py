"""MQTT pieces shared by the agent and monitor-api: topics, status messages, the session-takeover
back-off and a paho-mqtt (MQTT v5) connection manager (agent.md §13, api.md §10)."""

from ntpmon.mqttcm.status import StatusMessage, decode_status, encode_status
from ntpmon.mqttcm.takeover import TakeoverState
from ntpmon.mqttcm.topics import TopicError, Topics, client_id_from_name

__all__ = [
    "StatusMessage",
    "TakeoverState",
    "TopicError",
    "Topics",
    "client_id_from_name",
    "decode_status",
    "encode_status",
]
