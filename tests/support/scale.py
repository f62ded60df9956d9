"""How much of the long suites a run does: bounded in ``make test``, all of it in ``make soak``.

``make soak`` sets ``CACHESYNC_SOAK=1``. The bounded versions keep every assertion; they run
fewer generated examples and leave out the bulk of objects that no assertion singles out.
"""

from __future__ import annotations

import os
from typing import Final

SOAK: Final = os.environ.get("CACHESYNC_SOAK", "") not in ("", "0")


def scaled(bounded: int, soak: int) -> int:
    """``soak`` in a soak run, ``bounded`` otherwise."""
    return soak if SOAK else bounded
