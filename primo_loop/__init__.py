"""primo_loop: a video-language progress critic inside the robot-simulation loop.

Importing this package is cheap: it loads no torch, transformers or robosuite. Heavy
dependencies are imported inside the backend or module that needs them.
"""
from __future__ import annotations

from primo_loop.errors import (
    CheckpointError,
    CriticOutputError,
    DatasetError,
    PrimoError,
    UnknownNameError,
)
from primo_loop.types import CriticQuery, CriticVerdict

__version__ = "0.1.0"

__all__ = [
    "CheckpointError",
    "CriticOutputError",
    "CriticQuery",
    "CriticVerdict",
    "DatasetError",
    "PrimoError",
    "UnknownNameError",
    "__version__",
]
