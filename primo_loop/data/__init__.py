"""Episode recording, datasets on disk, and PRIMO-format import/export (DESIGN.md §5).

Submodules: :mod:`~primo_loop.data.episode` (an episode in memory and its step-by-step recorder),
:mod:`~primo_loop.data.dataset` (episodes on disk and dataset folders), :mod:`~primo_loop.data.collect` (parallel,
resumable collection of scripted sim rollouts), :mod:`~primo_loop.data.primo_format` (PRIMO benchmark records),
:mod:`~primo_loop.data.media` (video files, image folders, resizing), :mod:`~primo_loop.data.video_folder`
(scoring a folder of videos with instruction sidecars), :mod:`~primo_loop.data.synthetic` (a drawn scene for
tests without a simulator).
"""
from __future__ import annotations
