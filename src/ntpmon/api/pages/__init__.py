"""Read-only status pages (``create_pages_app`` in :mod:`ntpmon.api.pages.app`)."""
