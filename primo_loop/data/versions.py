"""The versions of the stack recorded in every collected episode's meta (``meta["versions"]``)."""
from __future__ import annotations

from typing import Any

import numpy as np

_VERSIONS: dict[str, Any] | None = None


def stack_versions(synthetic: bool) -> dict[str, Any]:
    """primo_loop, numpy and the episode format's versions, plus robosuite's and MuJoCo's unless ``synthetic``
    (looked up once per process)."""
    global _VERSIONS
    if _VERSIONS is None:
        import primo_loop

        v = {"primo_loop": primo_loop.__version__, "numpy": np.__version__, "format": 1}
        if not synthetic:
            try:
                import mujoco
                import robosuite

                v.update(robosuite=robosuite.__version__, mujoco=mujoco.__version__)
            except ImportError:
                pass
        _VERSIONS = v
    return _VERSIONS
