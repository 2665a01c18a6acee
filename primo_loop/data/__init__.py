"""Episode recording, datasets on disk, and PRIMO-format import/export (DESIGN.md §5).

Submodules: :mod:`~primo_loop.data.dataset` (episodes and dataset folders), :mod:`~primo_loop.data.primo_format`
(PRIMO benchmark records), :mod:`~primo_loop.data.video` (video files, resizing, atomic writes).
"""
from __future__ import annotations
