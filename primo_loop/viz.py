"""Annotated rollout videos: the frames the critic saw with its progress curve drawn beneath
(written with :func:`primo_loop.data.media.write_video`)."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

CRITIC_COLOR = (255, 140, 0)
ORACLE_COLOR = (60, 160, 255)
FAIL_COLOR = (230, 40, 40)


def _font(size: int):
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow without FreeType sizes
        return ImageFont.load_default()


def _points(steps: Sequence[int], values: Sequence[float | None], x0: int, y0: int, w: int, h: int,
            horizon: int) -> list[tuple[float, float]]:
    return [(x0 + w * s / max(horizon, 1), y0 + h * (1.0 - v)) for s, v in zip(steps, values) if v is not None]


def annotate_frames(frames: Sequence[np.ndarray], frame_steps: Sequence[int], *, horizon: int,
                    oracle: Sequence[float], critic_steps: Sequence[int], critic: Sequence[float | None],
                    title: str = "", end_step: int | None = None, end_reason: str | None = None,
                    failure_prob: Sequence[float | None] | None = None, panel: int = 72) -> list[np.ndarray]:
    """Draw progress curves (critic dots-and-line, oracle line, both 0-100) under each frame.

    Args:
        frames: uint8 [H, W, 3] frames, one per entry of ``frame_steps``.
        frame_steps: the env step of each frame.
        horizon: the x-axis length in steps.
        oracle: oracle progress for every step 0..len-1.
        critic_steps, critic: the steps the critic was queried and its progress (None: unreadable).
        title: text in the top-left corner (task, robot, critic).
        end_step, end_reason: draw the critic's early termination from this step on.
        failure_prob: the critic's failure probability at each query (shown as text).
        panel: height in pixels of the plot strip.

    Returns:
        New frames of shape [H + panel, W, 3]; curves grow up to each frame's step.
    """
    from PIL import Image, ImageDraw

    out = []
    small, big = _font(11), _font(13)
    for frame, step in zip(frames, frame_steps):
        h, w = frame.shape[:2]
        img = Image.new("RGB", (w, h + panel), (20, 20, 24))
        img.paste(Image.fromarray(frame), (0, 0))
        d = ImageDraw.Draw(img)
        x0, y0, pw, ph = 4, h + 14, w - 8, panel - 18
        d.rectangle([x0, y0, x0 + pw, y0 + ph], outline=(90, 90, 90))
        for frac in (0.5,):
            y = y0 + ph * (1 - frac)
            d.line([(x0, y), (x0 + pw, y)], fill=(55, 55, 60))
        osteps = list(range(min(step + 1, len(oracle))))
        opts = _points(osteps, [oracle[s] for s in osteps], x0, y0, pw, ph, horizon)
        if len(opts) > 1:
            d.line(opts, fill=ORACLE_COLOR, width=2)
        seen = [(s, v) for s, v in zip(critic_steps, critic) if s <= step]
        cpts = _points([s for s, _ in seen], [v for _, v in seen], x0, y0, pw, ph, horizon)
        if len(cpts) > 1:
            d.line(cpts, fill=CRITIC_COLOR, width=2)
        for x, y in cpts:
            d.ellipse([x - 2, y - 2, x + 2, y + 2], fill=CRITIC_COLOR)
        xs = x0 + pw * step / max(horizon, 1)
        d.line([(xs, y0), (xs, y0 + ph)], fill=(200, 200, 200))
        last = next((v for _, v in reversed(seen) if v is not None), None)
        cur_oracle = oracle[min(step, len(oracle) - 1)] if len(oracle) else None
        text = f"critic {last * 100:3.0f}" if last is not None else "critic  --"
        d.text((x0, h + 1), text, fill=CRITIC_COLOR, font=small)
        if cur_oracle is not None:
            d.text((x0 + 66, h + 1), f"oracle {cur_oracle * 100:3.0f}", fill=ORACLE_COLOR, font=small)
        if failure_prob is not None and w >= 220:
            fp = [f for s, f in zip(critic_steps, failure_prob) if s <= step and f is not None]
            if fp:
                d.text((x0 + 132, h + 1), f"fail {fp[-1]:.2f}", fill=(200, 200, 200), font=small)
        if w >= 180:
            d.text((w - 40, h + 1), f"t={step}", fill=(200, 200, 200), font=small)
        if title:
            d.text((4, 3), title, fill=(255, 255, 255), font=big, stroke_width=2, stroke_fill=(0, 0, 0))
        if end_step is not None and step >= end_step:
            xe = x0 + pw * end_step / max(horizon, 1)
            d.line([(xe, y0), (xe, y0 + ph)], fill=FAIL_COLOR, width=2)
            d.rectangle([0, 0, w - 1, h - 1], outline=FAIL_COLOR, width=3)
            d.text((6, h - 20), f"critic stopped: {end_reason}", fill=FAIL_COLOR, font=big,
                   stroke_width=2, stroke_fill=(0, 0, 0))
        out.append(np.asarray(img))
    return out
