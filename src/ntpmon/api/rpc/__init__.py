"""monitor-api's RPC listener: one TLS port serving ``monitor.v2.MonitorService`` over Connect,
gRPC and gRPC-Web, as upstream's connect-go handler does (DESIGN.md §2).

One service, several codecs: :mod:`.protocols` turns each protocol's request into a message and
a call's outcome back into that protocol's response; :mod:`.dispatch` runs the call (identity,
span, metrics, access log) the same way whatever the protocol; :mod:`.app` is the ASGI glue and
:mod:`.listener` the HTTP/1.1 + HTTP/2 TLS server around it.
"""
