"""``python -m tests.convergence``: see :mod:`tests.convergence.runner`."""

from __future__ import annotations

import sys

from tests.convergence.runner import main

sys.exit(main())
