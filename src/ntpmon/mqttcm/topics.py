"""Topic names under ``/<env>/monitors`` (agent.md §13.1, api.md §10.1) [COMPAT].

Both sides build and parse topics here, so agent and server can never disagree on a name.
"""

from __future__ import annotations

from ntpmon.common.environments import MONITOR_NAME_SUFFIX, DeployEnv, parse_env
from ntpmon.common.errors import NtpmonError

TRACEROUTE = "traceroute"
"""The request type and data-topic segment of traceroutes."""


class TopicError(NtpmonError, ValueError):
    """A topic that does not have the expected shape."""


def prefix_for(env: DeployEnv | str) -> str:
    """``/<env>/monitors``; the prefix always comes from the environment, never from the server."""
    return f"/{parse_env(str(env)).value}/monitors"


def client_id_from_name(name: str) -> str:
    """The MQTT client id: the name cut before ``.mon.ntppool.dev`` (``host.devel``)."""
    cut = name.find(MONITOR_NAME_SUFFIX)
    return name if cut < 0 else name[:cut]


class Topics:
    """Every topic of one deployment environment.

    ``prefix`` overrides ``/<env>/monitors`` for brokers shared by several deployments (and for
    tests, which each use a prefix of their own); both sides must then use the same one.
    """

    def __init__(self, env: DeployEnv | str, prefix: str = "") -> None:
        if prefix and (
            not prefix.startswith("/") or prefix.endswith("/") or "+" in prefix or "#" in prefix
        ):
            raise TopicError(f"invalid topic prefix {prefix!r} (/a/b, no wildcards)")
        self.prefix = prefix or prefix_for(env)

    def status(self, name: str) -> str:
        return f"{self.prefix}/status/{name}/status"

    def status_api_test(self, name: str) -> str:
        return f"{self.prefix}/status/{name}/api-test"

    def request(self, name: str, request_type: str) -> str:
        return f"{self.prefix}/requests/{name}/{request_type}"

    def request_subscription(self, name: str) -> str:
        return f"{self.prefix}/requests/{name}/+"

    def data_response(self, name: str, request_id: str) -> str:
        return f"{self.prefix}/data/{name}/{request_id}"

    def traceroute_result(self, name: str, result_id: str) -> str:
        """``P/data/NAME/traceroute/ID``: a traceroute result (issue 17).

        Agents publish results they ran on their own (GetServers' ``trace``) here with an id of
        their own, and monitor-api names it as the response topic of a traceroute request with
        the request id, so one subscription ingests both. It is inside the agents' publish
        rights (``P/data/NAME/+/+``, api.md §10.2).
        """
        return f"{self.prefix}/data/{name}/{TRACEROUTE}/{result_id}"

    def parse_traceroute_topic(self, topic: str) -> tuple[str, str] | None:
        """``P/data/NAME/traceroute/ID`` → ``(NAME, ID)``; None for any other topic."""
        head = self.prefix + "/data/"
        if not topic.startswith(head):
            return None
        parts = topic[len(head) :].split("/")
        if len(parts) != 3 or parts[1] != TRACEROUTE or not parts[0] or not parts[2]:
            return None
        return parts[0], parts[2]

    def all_status(self) -> str:
        return f"{self.prefix}/status/#"

    def all_data(self) -> str:
        return f"{self.prefix}/data/#"

    def everything(self) -> str:
        return f"{self.prefix}/#"

    def parse_request_topic(self, topic: str) -> tuple[str, str]:
        """``P/requests/NAME/TYPE`` → ``(TYPE, NAME)``; also parses data topics (id, NAME)."""
        rest = topic.removeprefix(self.prefix)
        parts = rest.split("/")
        if len(parts) < 4:
            raise TopicError(f'could not parse request topic: "{rest}"')
        return parts[3], parts[2]

    def parse_status_topic(self, topic: str) -> str | None:
        """The client name of a ``P/status/NAME/status`` topic; None for any other topic."""
        rest = topic.removeprefix(self.prefix + "/status/")
        if rest == topic:
            return None
        parts = rest.split("/")
        if len(parts) < 2 or parts[-1] != "status" or not parts[-2]:
            return None
        return parts[-2]

    def parse_data_topic(self, topic: str) -> tuple[str, str]:
        """``P/data/NAME/ID[/...]`` → ``(NAME, ID)`` (api.md §10.5)."""
        head = self.prefix + "/data/"
        if len(topic) <= len(head) or not topic.startswith(head):
            raise TopicError(f'not a data topic: "{topic}"')
        parts = topic[len(head) :].split("/")
        if len(parts) < 2 or not parts[0] or not parts[1]:
            raise TopicError(f'could not parse data topic: "{topic}"')
        return parts[0], parts[1]
