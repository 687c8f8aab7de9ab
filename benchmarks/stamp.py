"""Where and when a benchmark figure was measured: the stamp every result file of the
population-method benchmarks (es.py, tune.py, lpo.py) carries."""

from __future__ import annotations

import datetime
import os
import sys
from typing import Any


def machine() -> dict[str, Any]:
    """Date (UTC), command, CPU count, and purejaxlib's run record (versions, backend, devices, host, git)."""
    from purejaxlib.runner import environment_record

    return {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join(["python", *sys.argv]),
        "cpus": os.cpu_count(),
        **environment_record(),
    }
