"""Traceroute without root and without an external binary (issue 17, items 1-3).

UDP probes to the server's NTP port with increasing TTL / hop limit; the ICMP errors come back
on the probe sockets' error queues (``IP_RECVERR`` / ``IPV6_RECVERR``). The pure parts
(:mod:`.errqueue`: ``sock_extended_err`` parsing; :mod:`.result`: hop assembly, the JSON form
agents publish and monitor-api validates, path comparison) are apart from the socket loop
(:mod:`.engine`), so both sides share the wire format and the rules are testable alone.
"""
