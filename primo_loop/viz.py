"""Annotated rollout videos, readable at a glance (written with :func:`primo_loop.data.media.write_video`).

Each output frame stacks three bands:

- a header: the run's title (task / robot / critic) and the task instruction, wrapped to the width;
- the frame the critic saw, upscaled by an integer factor when small (a 64 px frame is shown 4x), with an
  outcome banner along its bottom edge (green for success, red for failure or a critic stop) and a border
  of the same colour around the whole picture;
- a plot strip: the critic's answers (dots and line) and the oracle's progress (line), both on 0-100 with
  tick labels, against env steps on the x axis; the current values are printed above it.

Every size (fonts, margins, line widths) follows from the canvas width (:func:`layout_for`), so the text
grows with ``--size`` and stays readable at 64 px.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

CRITIC_COLOR = (255, 140, 0)
ORACLE_COLOR = (60, 160, 255)
FAIL_COLOR = (230, 40, 40)
SUCCESS_COLOR = (40, 180, 70)
BANNER_COLORS = {"success": SUCCESS_COLOR, "failure": FAIL_COLOR}
BACKGROUND = (20, 20, 24)
TEXT_COLOR = (235, 235, 235)
GRID_COLOR = (60, 60, 66)
AXIS_COLOR = (150, 150, 150)
UNREAD_COLOR = (170, 170, 170)
MIN_WIDTH = 256  # frames narrower than this are upscaled (integer factor) so the text beside them fits


@dataclass(frozen=True)
class Layout:
    """Pixel sizes of one annotated frame, all derived from the frame width (see :func:`layout_for`)."""

    scale: int  # integer upscale factor of the frame
    width: int  # canvas width = frame width * scale
    font: int  # text size in pixels
    line: int  # height of one text line
    pad: int  # margin
    plot: int  # height of the plot area (without its labels)
    stroke: int  # curve and border width

    @property
    def panel(self) -> int:
        """Height of the plot strip: a line of current values, the plot, a line of x tick labels."""
        return self.line + self.pad + self.plot + self.line + self.pad


def layout_for(frame_width: int, min_width: int = MIN_WIDTH) -> Layout:
    """The layout for frames ``frame_width`` pixels wide.

    >>> [(lay.scale, lay.width, lay.font) for lay in map(layout_for, (64, 128, 224))]
    [(4, 256, 14), (2, 256, 14), (1, 224, 12)]
    """
    scale = max(1, round(min_width / max(frame_width, 1)))
    width = frame_width * scale
    font = max(10, round(width / 18))
    return Layout(scale=scale, width=width, font=font, line=round(font * 1.3), pad=max(3, font // 3),
                  plot=max(3 * font, round(width * 0.3)), stroke=max(2, width // 110))


@dataclass(frozen=True)
class Banner:
    """An outcome shown from ``step`` on (until a later banner): ``kind`` is success, failure or clear."""

    step: int
    text: str
    kind: str


def outcome_banners(rows: Sequence[Mapping[str, Any]]) -> list[Banner]:
    """The banners of an episode from its per-step rows (:mod:`primo_loop.rollout`'s ``episode_NNN.jsonl``).

    Success shows from the step it starts; losing it again, the oracle flagging a failure, the critic
    stopping the episode (with its reason) and an episode ending without success each show as failures.

    >>> rows = [{"step": 0}, {"step": 1, "is_success": True}, {"step": 2, "is_success": True,
    ...         "reason": "failure", "terminated": True}]
    >>> [(b.step, b.kind) for b in outcome_banners(rows)]
    [(1, 'success'), (2, 'failure')]
    """
    out: list[Banner] = []
    success = failed = False
    for r in rows:
        step = int(r["step"])
        now = bool(r.get("is_success"))
        if now and not success:
            out.append(Banner(step, f"SUCCESS t={step}", "success"))
        elif success and not now:
            out.append(Banner(step, f"SUCCESS LOST t={step}", "failure"))
        success = now
        if r.get("oracle_failed") and not failed:
            out.append(Banner(step, f"FAILED (oracle) t={step}", "failure"))
        failed = bool(r.get("oracle_failed"))
    if rows:
        last = rows[-1]
        step = int(last["step"])
        if last.get("reason"):
            out.append(Banner(step, f"CRITIC STOP: {last['reason']} t={step}", "failure"))
        elif not last.get("is_success") and (last.get("truncated") or last.get("terminated")):
            why = "time limit" if last.get("truncated") else "env ended"
            out.append(Banner(step, f"NO SUCCESS: {why} t={step}", "failure"))
    return out


def banner_at(banners: Sequence[Banner], step: int) -> Banner | None:
    """The banner showing at ``step``: the latest that started at or before it (None after a clear)."""
    shown = None
    for b in banners:
        if b.step <= step:
            shown = b
    return None if shown is None or shown.kind == "clear" else shown


def _font(size: int):
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow without FreeType sizes
        return ImageFont.load_default()


def _wrap(text: str, font, width: float) -> list[str]:
    """Greedy word wrap of ``text`` into lines at most ``width`` pixels long (a long word gets its own line)."""
    lines: list[str] = []
    for word in text.split():
        if lines and font.getlength(f"{lines[-1]} {word}") <= width:
            lines[-1] = f"{lines[-1]} {word}"
        else:
            lines.append(word)
    return lines


def _fit(text: str, font, width: float) -> str:
    """``text`` cut (with an ellipsis) to at most ``width`` pixels."""
    if font.getlength(text) <= width:
        return text
    while text and font.getlength(text + "...") > width:
        text = text[:-1]
    return text + "..."


def annotate_frames(frames: Sequence[np.ndarray], frame_steps: Sequence[int], *, horizon: int,
                    oracle: Sequence[float | None], critic_steps: Sequence[int], critic: Sequence[float | None],
                    instruction: str = "", title: str = "", banners: Sequence[Banner] = (),
                    end_step: int | None = None, failure_prob: Sequence[float | None] | None = None
                    ) -> list[np.ndarray]:
    """Draw the header, the outcome banner and the progress plot around each frame.

    Args:
        frames: uint8 [H, W, 3] frames, one per entry of ``frame_steps`` (all the same size).
        frame_steps: the env step of each frame.
        horizon: the x-axis length in steps.
        oracle: oracle progress (0-1) for every step 0..len-1; None where unknown.
        critic_steps, critic: the steps the critic was queried and its progress (None: unreadable, drawn as
            a grey tick on the x axis).
        instruction: the task in words (wrapped over as many lines as it needs).
        title: a short line above the instruction (task, robot, critic).
        banners: outcomes over time (:func:`outcome_banners`).
        end_step: the step the critic stopped the episode (a red line on the plot from then on).
        failure_prob: the critic's failure probability at each query (shown as text).

    Returns:
        New frames, all of one size: [header + H*scale + panel, W*scale, 3] with the layout of
        :func:`layout_for` (W).
    """
    from PIL import Image, ImageDraw

    if not len(frames):
        return []
    h, w = frames[0].shape[:2]
    lay = layout_for(w)
    font = _font(lay.font)
    small = _font(max(9, round(lay.font * 0.85)))
    text_w = lay.width - 2 * lay.pad
    head = ([_fit(title, small, text_w)] if title else []) + _wrap(instruction, font, text_w)
    header = lay.pad + len(head) * lay.line + (lay.pad if head else 0)
    fh = h * lay.scale
    total = header + fh + lay.panel
    y_label_w = round(font.getlength("100")) + lay.pad
    x0, x1 = lay.pad + y_label_w, lay.width - lay.pad - lay.font // 2
    py0 = header + fh + lay.line + lay.pad
    py1 = py0 + lay.plot
    span = max(horizon, 1)

    def px(step: float) -> float:
        return x0 + (x1 - x0) * min(max(step, 0), span) / span

    def py(value: float) -> float:
        return py1 - (py1 - py0) * value

    out = []
    for frame, step in zip(frames, frame_steps):
        img = Image.new("RGB", (lay.width, total), BACKGROUND)
        big = np.repeat(np.repeat(np.asarray(frame, np.uint8), lay.scale, axis=0), lay.scale, axis=1)
        img.paste(Image.fromarray(big), (0, header))
        d = ImageDraw.Draw(img)
        y = lay.pad
        for i, text in enumerate(head):
            is_title = bool(title) and i == 0
            d.text((lay.pad, y), text, fill=AXIS_COLOR if is_title else TEXT_COLOR, font=small if is_title else font)
            y += lay.line
        _draw_axes(d, lay, font, small, x0, x1, py0, py1, span, px, py)
        ostep = [s for s in range(min(step + 1, len(oracle))) if oracle[s] is not None]
        opts = [(px(s), py(oracle[s])) for s in ostep]
        if len(opts) > 1:
            d.line(opts, fill=ORACLE_COLOR, width=lay.stroke)
        seen = [(s, v) for s, v in zip(critic_steps, critic) if s <= step]
        cpts = [(px(s), py(v)) for s, v in seen if v is not None]
        if len(cpts) > 1:
            d.line(cpts, fill=CRITIC_COLOR, width=lay.stroke)
        r = lay.stroke + 1
        for cx, cy in cpts:
            d.ellipse([cx - r, cy - r, cx + r, cy + r], fill=CRITIC_COLOR)
        for s, v in seen:
            if v is None:  # an unreadable answer: a tick on the axis, no point
                d.line([(px(s), py1 - lay.pad), (px(s), py1)], fill=UNREAD_COLOR, width=lay.stroke)
        d.line([(px(step), py0), (px(step), py1)], fill=(200, 200, 200), width=1)
        if end_step is not None and step >= end_step:
            d.line([(px(end_step), py0), (px(end_step), py1)], fill=FAIL_COLOR, width=lay.stroke)
        _draw_values(d, lay, font, header + fh, seen, oracle, step, critic_steps, failure_prob)
        shown = banner_at(banners, step)
        if shown is not None:
            color = BANNER_COLORS.get(shown.kind, FAIL_COLOR)
            by = header + fh - lay.line - lay.pad
            d.rectangle([0, by, lay.width - 1, header + fh - 1], fill=color)
            d.text((lay.pad, by + lay.pad // 2), _fit(shown.text, font, text_w), fill=(255, 255, 255), font=font)
            d.rectangle([0, 0, lay.width - 1, total - 1], outline=color, width=lay.stroke + 1)
        out.append(np.asarray(img))
    return out


def _draw_axes(d, lay: Layout, font, small, x0, x1, py0, py1, span, px, py) -> None:
    """The plot frame, gridlines and tick labels at 0/50/100 (progress) and 0/half/horizon (steps)."""
    d.rectangle([x0, py0, x1, py1], outline=AXIS_COLOR)
    for v in (0.0, 0.5, 1.0):
        if 0 < v < 1:
            d.line([(x0, py(v)), (x1, py(v))], fill=GRID_COLOR)
        anchor = {0.0: "rb", 1.0: "rt"}.get(v, "rm")  # end labels inside the plot's height
        d.text((x0 - lay.pad // 2, py(v)), f"{v * 100:.0f}", fill=AXIS_COLOR, font=small, anchor=anchor)
    for s in (0, span // 2, span):
        d.line([(px(s), py1), (px(s), py1 + lay.pad // 2)], fill=AXIS_COLOR)
        anchor = "lt" if s == 0 else ("rt" if s == span else "mt")
        label = f"{s} steps" if s == span else str(s)
        d.text((px(s), py1 + lay.pad // 2), label, fill=AXIS_COLOR, font=small, anchor=anchor)


def _draw_values(d, lay: Layout, font, top: int, seen, oracle, step: int, critic_steps, failure_prob) -> None:
    """The current critic and oracle values (0-100), failure probability if known, and the step."""
    last = next((v for _, v in reversed(seen) if v is not None), None)
    cur = oracle[min(step, len(oracle) - 1)] if len(oracle) else None
    parts = [(f"critic {last * 100:.0f}" if last is not None else "critic --", CRITIC_COLOR),
             (f"oracle {cur * 100:.0f}" if cur is not None else "oracle --", ORACLE_COLOR)]
    if failure_prob is not None:
        fp = [f for s, f in zip(critic_steps, failure_prob) if s <= step and f is not None]
        if fp:
            parts.append((f"fail {fp[-1]:.2f}", TEXT_COLOR))
    x = lay.pad
    y = top + (lay.line - lay.font) // 2
    for text, color in parts:
        d.text((x, y), text, fill=color, font=font)
        x += font.getlength(text) + lay.font
    t = f"t={step}"
    if x + font.getlength(t) <= lay.width - lay.pad:
        d.text((lay.width - lay.pad, y), t, fill=AXIS_COLOR, font=font, anchor="ra")
