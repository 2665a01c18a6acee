"""Make ``import torchvision`` work on CPU-only torch before transformers' processors load.

The pinned ``torchvision==0.28.0`` wheel on PyPI is linked against CUDA torch. On the CPU torch wheel its C
extension fails to load silently, and then ``torchvision/_meta_registrations.py`` raises
``RuntimeError: operator torchvision::nms does not exist`` at import time. transformers (5.x) imports
torchvision eagerly from ``image_utils`` and its Qwen2-VL video processor requires it, so without this shim
every processor, and even ``import peft``, fails.

We only use torchvision's pure-Python transforms, so declaring the two missing operator schemas is enough for
the import to succeed. Where torchvision imports cleanly (a CPU build, or CUDA torch) this does nothing.

Call :func:`install` before the first transformers/peft/trl import (the VLM backend, the trainers and the tiny
model builder all do).
"""
from __future__ import annotations

import logging
import sys

logger = logging.getLogger(__name__)

_state: dict[str, object] = {}


def install() -> bool:
    """Make ``import torchvision`` succeed; idempotent.

    Returns:
        True if the shim was needed and installed (now or earlier), False if torchvision imported cleanly.

    Raises:
        ImportError: torchvision is not installed, or still fails to import with the shim (the message says
            which versions to pin).
    """
    if "patched" in _state:
        return bool(_state["patched"])
    try:
        import torchvision  # noqa: F401

        _state["patched"] = False
        return False
    except ModuleNotFoundError as exc:
        if exc.name == "torchvision":
            raise ImportError("The Qwen2.5-VL video processor needs torchvision; install `torchvision==0.28.0` "
                              "(matching torch==2.13.0).") from exc
        first_error: Exception = exc
    except Exception as exc:  # noqa: BLE001 - the broken import raises RuntimeError (or others)
        first_error = exc

    # Forget the half-imported package so the second import starts clean.
    for name in [m for m in sys.modules if m == "torchvision" or m.startswith("torchvision.")]:
        del sys.modules[name]

    import torch

    lib = torch.library.Library("torchvision", "DEF")  # kept alive in _state: dropping it undefines the ops
    for schema in ("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
                   "qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor"):
        try:
            lib.define(schema)
        except RuntimeError:  # already defined (e.g. by a partial load): fine
            pass
    _state["lib"] = lib
    try:
        import torchvision  # noqa: F401,F811
    except Exception as exc:  # noqa: BLE001
        raise ImportError(
            f"torchvision fails to import even with primo_loop's CPU shim ({type(exc).__name__}: {exc}); first "
            f"error: {type(first_error).__name__}: {first_error}. Pin torch==2.13.0 with torchvision==0.28.0."
        ) from exc
    logger.debug("torchvision shim installed (first import failed with %s)", type(first_error).__name__)
    _state["patched"] = True
    return True
