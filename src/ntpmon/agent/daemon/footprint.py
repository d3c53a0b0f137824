"""grpcio without its asyncio API: the one memory measure ``monitor`` still takes itself
(docs/agent.md, Memory footprint), and only in ``--rpc-protocol grpc`` mode.

grpcio loads its asyncio API (and asyncio with it) on import although the agent only uses the
synchronous one; :func:`import_grpc_without_asyncio` defers both until something uses them,
~2.3 MB less in grpc mode. Connect mode never imports grpcio. The other measures once here
(a malloc arena cap, collecting and freezing the start-up garbage) were measured and dropped:
they saved 0.0–0.3 MB.
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import Any

# grpcio's native module imports asyncio; ``grpc/__init__`` imports grpc.aio (see below)
GRPC_ASYNC_MODULES = ("asyncio", "grpc.aio")


class DeferredModule(types.ModuleType):
    """Stands in for a module until one of its attributes is read, then becomes a copy of it.

    Reading an attribute imports the real module (by name, as any import would) and copies its
    namespace here, so whoever holds the stand-in sees the real module from then on. Dunder
    probes (``__path__``, ``__file__``, ...) do not load it: the import system asks for those.
    """

    def __getattr__(self, attr: str) -> Any:
        if attr.startswith("__") and attr.endswith("__"):
            raise AttributeError(attr)
        return getattr(self.load(), attr)

    def load(self) -> types.ModuleType:
        """The real module, imported now if need be; its namespace is copied into this one."""
        name = self.__name__
        if sys.modules.get(name) is self:
            del sys.modules[name]  # still in the window of ``import_grpc_without_asyncio``
        module = importlib.import_module(name)
        self.__dict__.update(module.__dict__)
        return module


def import_grpc_without_asyncio() -> bool:
    """Import grpcio with asyncio and ``grpc.aio`` deferred; True when they were deferred.

    The agent talks to monitor-api with grpcio's synchronous API, but ``import grpc`` loads the
    asyncio API too: the native module runs ``import asyncio`` and ``grpc/__init__`` imports
    ``grpc.aio``, ~2 MB resident of modules (asyncio, subprocess, ...) that are never used.
    While grpc imports, :class:`DeferredModule` stand-ins take their place; neither import
    reads an attribute, so neither loads. Right after, the stand-ins leave ``sys.modules``: a
    later ``import asyncio`` or ``import grpc.aio`` anywhere gets the real module, and grpcio's
    own references (its ``asyncio`` global, the ``grpc.aio`` attribute) load it on first use.

    Does nothing once grpc or asyncio is imported; call it before anything imports grpc.
    """
    if "grpc" in sys.modules or "asyncio" in sys.modules:
        return False
    for name in GRPC_ASYNC_MODULES:
        sys.modules[name] = DeferredModule(name)
    try:
        importlib.import_module("grpc")
    finally:
        for name in GRPC_ASYNC_MODULES:
            if isinstance(sys.modules.get(name), DeferredModule):
                del sys.modules[name]
    return True
