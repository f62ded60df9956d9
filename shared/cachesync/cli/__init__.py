"""The ``cachesync`` command line: the local stack, reads and writes of the index, and jobs.

- :mod:`~cachesync.cli.app`: the application and the script's entry point;
- :mod:`~cachesync.cli.local_stack`: ``local up``, ``invoke``;
- :mod:`~cachesync.cli.index_commands`: ``query``, ``get``, ``put``, ``delete``;
- :mod:`~cachesync.cli.jobs`: ``backfill``, ``verify``;
- :mod:`~cachesync.cli.output`: where output goes (results on stdout, the rest on stderr) and
  exit statuses; :mod:`~cachesync.cli.configuration`: settings and client options.

Every command wires its use case through :mod:`cachesync.runtime`. Never shipped to Lambda.
"""

from cachesync.cli.app import app, main

__all__ = ["app", "main"]
