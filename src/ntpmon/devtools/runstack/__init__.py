"""``make run``: the local stack (see ``main``)."""
