"""Read-only status pages: servers, one server's score and offset graphs, monitors."""

from ntpmon.api.pages.app import create_pages_app

__all__ = ["create_pages_app"]
