"""Frame arrays and media files: reading and writing videos and image folders, resizing frames.

(Scoring a folder of videos with instruction sidecars is :mod:`primo_loop.data.video_folder`.)

Everything here speaks uint8 ``[T, H, W, 3]`` upright RGB arrays (DESIGN.md §3).
"""
from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import numpy as np

from primo_loop.errors import ConfigError, DatasetError
from primo_loop.outputs import atomic_path

logger = logging.getLogger(__name__)

VIDEO_SUFFIXES = (".mp4", ".avi", ".webm", ".mkv", ".mov", ".gif")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp")


def resize_frames(frames: np.ndarray, size: int) -> np.ndarray:
    """Resize square frames to ``size`` x ``size`` by area averaging (a no-op at that size).

    One function serves collection, the PRIMO importer and the compact critic, so frames reach the
    critic's network the same way in training and in the loop. Integer factors (128 -> 64) give the exact
    area average with or without OpenCV; other factors use OpenCV's INTER_AREA, or Pillow's antialiased
    bilinear where OpenCV is missing.

    Args:
        frames: uint8 ``[H, W, 3]`` or ``[T, H, W, 3]``.
        size: output side in pixels.

    Returns:
        uint8 array of the same rank, spatial size ``size`` x ``size``.

    >>> resize_frames(np.zeros((2, 128, 128, 3), np.uint8), 64).shape
    (2, 64, 64, 3)
    """
    frames = np.asarray(frames)
    single = frames.ndim == 3
    batch = frames[None] if single else frames
    if batch.ndim != 4 or batch.shape[-1] != 3:
        raise ConfigError(f"Expected frames of shape [H, W, 3] or [T, H, W, 3], actually: {frames.shape}")
    if batch.shape[1] == size and batch.shape[2] == size:
        out = batch.astype(np.uint8, copy=False)
    else:
        cv2 = _cv2()
        h, w = batch.shape[1:3]
        if cv2 is not None:
            # INTER_AREA: the exact area average for integer factors (same as below), area weights otherwise
            out = np.stack([cv2.resize(np.ascontiguousarray(fr), (size, size), interpolation=cv2.INTER_AREA)
                            for fr in batch.astype(np.uint8, copy=False)])
        elif h % size == 0 and w % size == 0 and h == w:
            # Integer factor: exact area average, rounded half up, in integer arithmetic.
            f = h // size
            acc = np.zeros((len(batch), size, size, 3), np.uint32 if f > 15 else np.uint16)
            for dy in range(f):
                for dx in range(f):
                    acc += batch[:, dy::f, dx::f]
            out = ((acc + (f * f) // 2) // (f * f)).astype(np.uint8)
        else:
            from PIL import Image

            out = np.stack([np.asarray(Image.fromarray(np.ascontiguousarray(fr)).resize(
                (size, size), Image.BILINEAR)) for fr in batch.astype(np.uint8, copy=False)])
    return out[0] if single else out


_CV2: Any = False


def _cv2() -> Any:
    """OpenCV if it imports (robosuite's stack ships it), else None; looked up once."""
    global _CV2
    if _CV2 is False:
        try:
            import cv2

            cv2.setNumThreads(1)
            _CV2 = cv2
        except ImportError:
            _CV2 = None
    return _CV2


def write_video(path: str | os.PathLike, frames: np.ndarray, fps: float = 10.0, quality: int = 8) -> Path:
    """Write frames to a video file atomically (format from the suffix, e.g. ``.mp4``).

    Args:
        path: output path.
        frames: uint8 ``[T, H, W, 3]``; an odd H or W is padded by one black row/column (H.264 needs even sizes).
        fps: frames per second.
        quality: imageio-ffmpeg quality, 0-10 (10 = best).
    """
    import imageio.v2 as imageio

    frames = np.asarray(frames, dtype=np.uint8)
    if frames.ndim != 4 or frames.shape[-1] != 3 or len(frames) == 0:
        raise ConfigError(f"Expected frames uint8 [T>0, H, W, 3], actually: {frames.shape}")
    if frames.shape[1] % 2 or frames.shape[2] % 2:
        frames = np.pad(frames, ((0, 0), (0, frames.shape[1] % 2), (0, frames.shape[2] % 2), (0, 0)))
    path = Path(path)
    with atomic_path(path) as tmp:
        writer = imageio.get_writer(tmp, fps=fps, quality=quality, macro_block_size=1,
                                    ffmpeg_log_level="error")
        try:
            for fr in frames:
                writer.append_data(fr)
        finally:
            writer.close()
    return path


def read_video(path: str | os.PathLike) -> np.ndarray:
    """Read every frame of a video file, a single image, or a folder of images (sorted by name).

    Raises:
        DatasetError: the path does not exist or cannot be decoded (the message names it).
    """
    import imageio.v2 as imageio

    path = Path(path)
    if not path.exists():
        raise DatasetError(f"Media file not found: {path}")
    try:
        if path.is_dir():
            files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
            if not files:
                raise DatasetError(f"No images ({', '.join(IMAGE_SUFFIXES)}) in folder {path}")
            frames = np.stack([_rgb(imageio.imread(p)) for p in files])
        elif path.suffix.lower() in IMAGE_SUFFIXES:
            frames = _rgb(imageio.imread(path))[None]
        else:
            reader = imageio.get_reader(path, format="FFMPEG") if path.suffix.lower() != ".gif" \
                else imageio.get_reader(path)
            try:
                frames = np.stack([_rgb(f) for f in reader])
            finally:
                reader.close()
    except DatasetError:
        raise
    except Exception as exc:  # imageio raises many types for bad media
        raise DatasetError(f"Could not decode media file {path}: {media_error(exc)}") from exc
    if len(frames) == 0:
        raise DatasetError(f"Media file {path} holds no frames")
    return frames


def media_error(exc: BaseException) -> str:
    """One line for a decoder error: its first line and ffmpeg's last error line, without ffmpeg's banner.

    >>> media_error(OSError("Could not load meta information\\n=== stderr ===\\nffmpeg version 9\\n"
    ...                     "  configuration: --enable-gpl\\nError opening input files: Invalid data"))
    'OSError: Could not load meta information (Error opening input files: Invalid data)'
    """
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    head = f"{type(exc).__name__}: {lines[0] if lines else ''}".rstrip(": ")
    errors = [ln for ln in lines[1:] if any(w in ln.lower() for w in ("error", "invalid", "no such", "denied"))]
    return head + (f" ({errors[-1]})" if errors else "")


def _rgb(img: np.ndarray) -> np.ndarray:
    img = np.asarray(img)
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=-1)
    if img.shape[-1] == 4:
        img = img[..., :3]
    return img.astype(np.uint8, copy=False)
