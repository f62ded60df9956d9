"""The web console at ``/console``: its router (``routes.py``) and its static files (this folder).

A package rather than an ``api/console.py`` module next to an ``api/console/`` folder: mypy
(and setuptools' package discovery) would take such a folder for a namespace package of the
same name and no longer see the module.
"""

from cachesync.api.console.routes import CONSOLE_ASSETS, CONSOLE_CSP, console_asset, console_router

__all__ = ["CONSOLE_ASSETS", "CONSOLE_CSP", "console_asset", "console_router"]
