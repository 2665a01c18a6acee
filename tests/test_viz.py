"""The annotated rollout frames: instruction, curves with axes, outcome banners, sizes that follow the frame."""
from __future__ import annotations

import numpy as np
import pytest

from primo_loop.viz import (
    CRITIC_COLOR,
    FAIL_COLOR,
    ORACLE_COLOR,
    SUCCESS_COLOR,
    Banner,
    annotate_frames,
    banner_at,
    layout_for,
    outcome_banners,
)

MAGENTA = (255, 0, 255)  # a frame colour drawn nowhere else, to find the frame in the output


def _frames(size, n=6):
    return [np.full((size, size, 3), MAGENTA, np.uint8) for _ in range(n)]


def _draw(size=64, n=6, critic=(0.0, 0.4, 0.8), instruction="lift the red cube", banners=(), **kw):
    steps = [i * 4 for i in range(n)]
    oracle = [min(1.0, s / 20) for s in range(steps[-1] + 1)]
    return annotate_frames(_frames(size, n), steps, horizon=steps[-1], oracle=oracle,
                           critic_steps=[0, 10, 20][: len(critic)], critic=list(critic),
                           instruction=instruction, banners=banners, **kw)


def _frame_rows(img):
    rows = np.where((img == MAGENTA).all(axis=2).mean(axis=1) > 0.5)[0]
    return rows.min(), rows.max()


def _near(img, color, tol=40):
    return (np.abs(img.astype(int) - np.array(color)).max(axis=2) <= tol)


def test_layout_scales_with_the_frame_and_small_frames_are_upscaled():
    small, mid, big, huge = (layout_for(s) for s in (64, 128, 224, 448))
    assert (small.scale, small.width) == (4, 256) and (mid.scale, mid.width) == (2, 256) and big.scale == 1
    assert small.font >= 12 and big.font >= 12  # readable at both ends of --size
    assert huge.font == pytest.approx(2 * big.font, abs=1) and huge.plot == 2 * big.plot
    out = _draw(64)[0]
    top, bottom = _frame_rows(out)
    assert out.shape[1] == 256 and bottom - top + 1 == 256  # the 64 px frame shown 4x, whole


def test_text_grows_with_size():
    def ink_rows(size):
        img = _draw(size, instruction="lift")[0]
        top, _ = _frame_rows(img)
        return int((img[:top].max(axis=(1, 2)) > 200).sum())  # rows of bright (instruction) text in the header

    small, big = ink_rows(224), ink_rows(448)
    assert small >= 8 and 1.6 <= big / small <= 2.4


def test_instruction_in_the_header_wrapped_to_the_width():
    a, b = _draw(instruction="lift the red cube")[0], _draw(instruction="open the door")[0]
    top, _ = _frame_rows(a)
    assert top > 0 and (a[:top] != b[:top]).any()  # the header shows the instruction
    assert (a[top:] == b[top:]).all()  # ... and only the header
    long = _draw(instruction="pick up the red cube and place it on top of the green cube on the table")[0]
    assert _frame_rows(long)[0] > top  # wrapped onto more lines, not cut
    assert _frame_rows(_draw(instruction="")[0])[0] < top


def test_curves_are_drawn_in_the_plot_and_grow_with_time():
    frames = _draw()
    _, bottom = _frame_rows(frames[-1])
    first, last = frames[0][bottom + 1:], frames[-1][bottom + 1:]
    values_line = last.shape[0] // 5  # skip the line of current values (coloured text) at the top of the strip
    for color in (CRITIC_COLOR, ORACLE_COLOR):
        assert _near(last[values_line:], color).sum() > 3 * _near(first[values_line:], color).sum() + 20
    # the oracle climbs from bottom-left to top-right: its pixels span most of the plot's height
    ys = np.where(_near(last[values_line:], ORACLE_COLOR, tol=20).any(axis=1))[0]
    assert ys.max() - ys.min() > 0.5 * layout_for(64).plot


def test_unread_answers_never_break_the_drawing():
    out = _draw(critic=(None, None, None), failure_prob=[None, None, None])
    _, bottom = _frame_rows(out[-1])
    plot = out[-1][bottom + 1 + out[-1][bottom + 1:].shape[0] // 5:]
    assert _near(plot, CRITIC_COLOR, tol=20).sum() == 0  # no critic curve without a readable answer
    assert _near(plot, ORACLE_COLOR, tol=20).sum() > 0
    out = _draw(critic=(0.1, None, 0.7))
    assert len(out) == 6
    assert len(annotate_frames([], [], horizon=10, oracle=[], critic_steps=[], critic=[])) == 0
    # an env without privileged state: no oracle at all
    annotate_frames(_frames(32, 2), [0, 2], horizon=2, oracle=[None, None, None], critic_steps=[0], critic=[None])


def _banner_band(img, size=64):
    _, bottom = _frame_rows(_draw(size)[0])  # where the frame ends without a banner (same layout)
    return img[bottom + 1 - 4: bottom + 1]  # the banner is drawn over the frame's bottom edge


@pytest.mark.parametrize("size", [64, 224])
def test_success_and_failure_banners_differ_in_colour(size):
    ok = _draw(size, banners=[Banner(0, "SUCCESS t=0", "success")])[-1]
    bad = _draw(size, banners=[Banner(0, "CRITIC STOP: failure t=0", "failure")])[-1]
    none = _draw(size)[-1]
    assert _near(_banner_band(ok, size), SUCCESS_COLOR, tol=10).mean() > 0.5
    assert _near(_banner_band(bad, size), FAIL_COLOR, tol=10).mean() > 0.5
    assert _near(_banner_band(none, size), MAGENTA, tol=0).all()  # no outcome yet: the frame is untouched
    assert tuple(ok[1, 1]) == SUCCESS_COLOR and tuple(bad[1, 1]) == FAIL_COLOR  # and a border of that colour


def test_banner_shows_from_its_step_on():
    frames = _draw(banners=[Banner(8, "SUCCESS t=8", "success")])  # frames at steps 0, 4, 8, ...
    assert [bool(_near(_banner_band(f), SUCCESS_COLOR, tol=10).mean() > 0.5) for f in frames] == [
        False, False, True, True, True, True]


def _rows(n, **at):
    rows = [{"step": s, "is_success": False, "oracle_failed": False, "reason": None, "terminated": False,
             "truncated": False} for s in range(n)]
    for key, steps in at.items():
        for s in steps:
            rows[s][key] = True if key != "reason" else "regression"
    return rows


def test_outcome_banners_from_the_rows():
    held = outcome_banners(_rows(10, is_success=range(5, 10)))
    assert [(b.step, b.kind) for b in held] == [(5, "success")] and "t=5" in held[0].text
    lost = outcome_banners(_rows(10, is_success=range(5, 7), truncated=[9]))
    assert [(b.step, b.kind) for b in lost] == [(5, "success"), (7, "failure"), (9, "failure")]
    assert "time limit" in lost[-1].text
    stopped = outcome_banners(_rows(10, oracle_failed=range(4, 10), reason=[9], terminated=[9]))
    assert [(b.step, b.kind) for b in stopped] == [(4, "failure"), (9, "failure")]
    assert "regression" in stopped[-1].text  # the critic's termination reason
    assert banner_at(stopped, 3) is None and banner_at(stopped, 5) is stopped[0] and banner_at(stopped, 9) is stopped[1]
    assert banner_at([Banner(1, "x", "success"), Banner(3, "", "clear")], 4) is None
    assert outcome_banners([]) == []


def test_rollout_video_carries_the_instruction_and_the_success_banner(tmp_path):
    import imageio.v2 as imageio

    from primo_loop.rollout import run_episode, write_episode
    from primo_loop.testing.fakes import ProgressEnv, ScriptedCritic
    from primo_loop.wrappers import CriticInTheLoop

    class Forward:
        def reset(self):
            pass

        def act(self, obs):
            return np.array([0.5], dtype=np.float32)

    env = CriticInTheLoop(ProgressEnv(horizon=40, size=32), critic=ScriptedCritic(), critic_every=5, frame_every=2)
    rec = run_episode(env, Forward(), seed=0, stop_after_success=3)
    a = imageio.mimread(write_episode(rec, tmp_path / "a", 0, instruction="push the block")["video"])
    b = imageio.mimread(write_episode(rec, tmp_path / "b", 0, instruction="reach the goal")["video"])
    assert a[-1].shape[1] == 256  # the 32 px frames upscaled 8x
    assert np.abs(a[0][:20].astype(int) - b[0][:20]).max() > 60  # the header shows each instruction
    assert np.abs(a[-1][2, 2].astype(int) - SUCCESS_COLOR).max() < 40  # success: a green border at the end
    assert np.abs(a[0][2, 2].astype(int) - SUCCESS_COLOR).max() > 60  # ... not at the start
