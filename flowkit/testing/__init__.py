"""flowkit's pytest plugin (entry point ``pytest11``).

Loaded in every pytest session of a project that has flowkit installed, so it imports nothing heavy at
load time: each fixture imports what it needs when it is used.

- ``flow_snapshot`` (``_snapshot.py``): syrupy snapshot of a compiled workflow as pretty, sorted JSON.
- ``flowkit_run`` (``_local.py``): run a workflow locally and get the finished run back.
"""

from __future__ import annotations

from flowkit.testing._local import *  # noqa: F403
from flowkit.testing._snapshot import *  # noqa: F403
