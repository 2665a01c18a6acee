"""The `primo` backend on the tiny random Qwen2.5-VL: prompt -> processor -> generate -> parse, on the CPU."""
from __future__ import annotations

import numpy as np
import pytest

from primo_loop.critics import make_critic
from primo_loop.errors import CriticUnavailableError
from primo_loop.types import CriticQuery


def _query(seed: int, size: int = 64, t: int = 8, instruction: str = "lift the cube",
           anchor_size: tuple[int, int] | None = None) -> CriticQuery:
    rng = np.random.default_rng(seed)
    clip = rng.integers(0, 256, (t, size, size, 3), dtype=np.uint8)
    ah, aw = anchor_size or (size, size)
    return CriticQuery(instruction=instruction, initial=rng.integers(0, 256, (ah, aw, 3), dtype=np.uint8),
                       clip=clip, current=rng.integers(0, 256, (ah, aw, 3), dtype=np.uint8), step=seed)


@pytest.fixture(scope="module")
def critic(tiny_vlm):
    return make_critic("primo", model=str(tiny_vlm), max_new_tokens=24, batch_size=8)


def test_prompt_generate_parse(critic):
    queries = [_query(0), _query(1, instruction="open the door")]
    verdicts = critic.assess(queries)
    assert len(verdicts) == 2
    for v in verdicts:
        assert isinstance(v.raw, str) and v.latency_s > 0
        assert 1 <= v.output_tokens <= 24
        assert v.progress is None or 0.0 <= v.progress <= 1.0  # a random model's answer is usually unreadable
    assert critic.stats["queries"] == 2 and critic.stats["output_tokens"] == sum(v.output_tokens for v in verdicts)
    assert critic.model.dtype.is_floating_point and str(critic.device) == "cpu"


def test_inputs_hold_image_video_image_in_order(critic):
    inputs = critic.prepare([_query(0)])
    tok = critic.processor.tokenizer
    ids = inputs["input_ids"][0].tolist()
    img, vid = tok.convert_tokens_to_ids("<|image_pad|>"), tok.convert_tokens_to_ids("<|video_pad|>")
    img_pos = [i for i, t in enumerate(ids) if t == img]
    vid_pos = [i for i, t in enumerate(ids) if t == vid]
    assert img_pos and vid_pos
    # [initial image] < [video] < [current image] < question text
    first_img_end = img_pos[len(img_pos) // 2 - 1]
    assert img_pos[0] < vid_pos[0] and first_img_end < vid_pos[0] and vid_pos[-1] < img_pos[-1]
    assert img_pos[-1] < len(ids) - 20  # the question comes after the current image
    # the clip is a video (temporal merge of 8 frames -> 4), with Qwen's fps=2 time spacing
    assert inputs["video_grid_thw"].tolist() == [[4, 4, 4]]
    assert inputs["second_per_grid_ts"].tolist() == [1.0]
    assert inputs["image_grid_thw"].shape[0] == 2


def test_batched_greedy_equals_one_by_one(critic):
    queries = [_query(0), _query(1, t=5), _query(2, size=80), _query(3, t=3, instruction="stack the cubes")]
    batched = critic.assess(queries)
    single = [critic.assess([q])[0] for q in queries]
    assert [v.raw for v in batched] == [v.raw for v in single]
    assert [v.output_tokens for v in batched] == [v.output_tokens for v in single]


def test_wrong_frame_sizes_are_resized(tiny_vlm, critic):
    odd = _query(4, size=64, anchor_size=(40, 48))  # anchors of another size than the clip
    tiny = _query(5, size=20)  # below Qwen2.5-VL's 28 px patch: scaled up
    verdicts = critic.assess([odd, tiny])
    assert len(verdicts) == 2 and all(v.output_tokens for v in verdicts)
    fixed = make_critic("primo", model=str(tiny_vlm), max_new_tokens=4, frame_size="84x112")
    inputs = fixed.prepare([odd])
    assert inputs["video_grid_thw"].tolist() == [[4, 6, 8]]  # 84x112 px -> 6x8 patches


def test_answer_parsing_reaches_the_verdict(critic, monkeypatch):
    monkeypatch.setattr(critic, "generate", lambda qs: (["<think>two of three</think><answer>~67%</answer>",
                                                         "no idea"], [9, 2]))
    v_ok, v_bad = critic.assess([_query(0), _query(1)])
    assert v_ok.progress == pytest.approx(0.67) and v_ok.reasoning == "two of three" and v_ok.output_tokens == 9
    assert v_bad.progress is None and v_bad.raw == "no idea"


def test_missing_model_path_names_the_fix(tmp_path):
    with pytest.raises(CriticUnavailableError, match="does not exist"):
        make_critic("primo", model=str(tmp_path / "no_such_model"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(CriticUnavailableError, match="no config.json"):
        make_critic("primo", model=str(tmp_path / "empty"))


def test_unreachable_hub_model_names_the_fix(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(CriticUnavailableError, match="hf download|remote"):
        make_critic("primo", model="nobody-here/not-a-model-xyz")


def test_release_defaults():
    from primo_loop.critics.primo import MAX_NEW_TOKENS, MAX_PIXELS, VLMCritic

    critic = VLMCritic.__new__(VLMCritic)
    critic._configure()
    assert (critic.max_new_tokens, critic.temperature, critic.top_p) == (4096, 0.1, 0.001) == (
        MAX_NEW_TOKENS, 0.1, 0.001)
    assert critic.max_pixels == MAX_PIXELS == 401408 and critic.answer_parsing == "lenient"
    assert critic.template.name == "primo-sft" and critic.template.system
    rl = VLMCritic.__new__(VLMCritic)
    rl._configure(prompt_profile="primo-rl", answer_parsing="official")
    assert rl.template.system is None and rl.answer_parsing == "official"


def test_anchors_keep_their_resolution_capped_by_max_pixels():
    from primo_loop.critics.primo import normalize_frames

    rng = np.random.default_rng(0)
    q = CriticQuery(instruction="lift", initial=rng.integers(0, 256, (960, 1280, 3), dtype=np.uint8),
                    clip=rng.integers(0, 256, (4, 64, 64, 3), dtype=np.uint8),
                    current=rng.integers(0, 256, (120, 160, 3), dtype=np.uint8))
    initial, clip, current = normalize_frames(q)
    assert clip.shape == (4, 64, 64, 3) and current.shape == (120, 160, 3)  # no longer shrunk to the clip's size
    h, w = initial.shape[:2]
    assert 400000 < h * w <= 401408 and abs(w / h - 4 / 3) < 0.01  # capped, aspect kept
    assert normalize_frames(q, max_pixels=None)[0].shape == (960, 1280, 3)
    assert normalize_frames(q, frame_size=56)[0].shape == (56, 56, 3)


def test_official_answer_parsing_reaches_the_verdict(tiny_vlm, monkeypatch):
    critic = make_critic("primo", model=str(tiny_vlm), max_new_tokens=4, answer_parsing="official")
    monkeypatch.setattr(critic, "generate", lambda qs: (["<answer>40</answer>", "<answer>0.4</answer>",
                                                         "<answer>about 40</answer>", "<answer>250</answer>"],
                                                        [3, 3, 3, 3]))
    got = [v.progress for v in critic.assess([_query(i) for i in range(4)])]
    # the release's reading: 0.4 stays 0.4 (on 0-100), words are unreadable, 250 is outside the verdict's range
    assert got == [pytest.approx(0.4), pytest.approx(0.004), None, None]


def test_rollout_log_keeps_what_the_model_said(critic, tmp_path):
    from primo_loop.rollout import run_episode, write_episode
    from primo_loop.testing.fakes import ProgressEnv
    from primo_loop.wrappers import CriticInTheLoop

    class Forward:
        def reset(self):
            pass

        def act(self, obs):
            return np.array([0.3], np.float32)

    env = CriticInTheLoop(ProgressEnv(horizon=10, size=64), critic=critic, critic_every=5)
    rec = run_episode(env, Forward(), seed=0)
    queried = [r for r in rec.rows if r["queried"]]
    assert len(queried) == 2 and all(isinstance(r["critic_raw"], str) and r["critic_raw"] for r in queried)
    assert all(r["critic_raw"] is None and r["critic_reasoning"] is None for r in rec.rows if not r["queried"])
    assert rec.summary["critic_unreadable"] == sum(r["critic_progress"] is None for r in queried)
    log = write_episode(rec, tmp_path, 0)["log"]
    import json

    rows = [json.loads(x) for x in log.read_text().splitlines()]
    assert [r["critic_raw"] for r in rows] == [r["critic_raw"] for r in rec.rows]
