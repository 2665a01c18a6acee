"""VLM GRPO on the tiny Qwen2.5-VL: 2 steps with PRIMO's rewards, the clip reaching the loss as video."""
from __future__ import annotations

import json
import math
import zlib

import numpy as np
import pytest

from primo_loop.critics import make_critic
from primo_loop.training.rewards import accuracy_reward, completion_text, format_reward
from primo_loop.types import CriticQuery

FAST = {"num_generations": 4, "per_device_train_batch_size": 4, "max_completion_length": 16,
        "learning_rate": 1e-3, "warmup_steps": 0, "beta": 0.0, "nframes": 4, "save_steps": 1}


def spread_reward(completions, **kwargs):
    """A test-only reward that differs between completions, so the group advantages are non-zero.

    (A random model never earns PRIMO's rewards, so they alone would give an all-zero advantage.)
    """
    return [zlib.crc32(completion_text(c).encode()) % 97 / 97.0 for c in completions]


def _weights(path):
    from safetensors.numpy import load_file

    return load_file(str(path / "model.safetensors"))


def _run(tiny_vlm, primo_records, out, *, lora=False, config=None, max_steps=2, resume=False):
    """Build the trainer, record every forward call of the policy, train, save; return (trainer, calls)."""
    import torch

    from primo_loop.training.grpo import build_trainer
    from primo_loop.training.vlm_common import save_final

    trainer, run = build_trainer(
        str(tiny_vlm), str(primo_records), out, lora=lora, config={**FAST, **(config or {})}, max_steps=max_steps,
        reward_funcs=[format_reward, accuracy_reward, spread_reward])
    calls = []

    def record(module, args, kwargs):
        grid = kwargs.get("video_grid_thw")
        pv = kwargs.get("pixel_values_videos")
        calls.append({"grad": torch.is_grad_enabled(), "video": pv is not None,
                      "rows_match": pv is not None and int(grid.prod(-1).sum()) == pv.shape[0],
                      "batch": kwargs["input_ids"].shape[0] if "input_ids" in kwargs else None,
                      "videos": 0 if grid is None else grid.shape[0]})
        return None

    def record_vision(module, args, kwargs):
        grid = kwargs.get("grid_thw", args[1] if len(args) > 1 else None)
        calls.append({"grad": torch.is_grad_enabled(), "vision_tower": True, "video": False,
                      "temporal": int(grid[:, 0].max())})
        return None

    # The inner Qwen2_5_VLModel receives what the top-level forward (and any LoRA wrapper) passes on; its vision
    # tower encodes images (temporal size 1) and videos (temporal size > 1).
    inner = next(m for m in trainer.model.modules() if type(m).__name__ == "Qwen2_5_VLModel")
    inner.register_forward_pre_hook(record, with_kwargs=True)
    inner.visual.register_forward_pre_hook(record_vision, with_kwargs=True)
    ckpt = None
    if resume:
        from primo_loop.training.vlm_common import resume_checkpoint

        ckpt = resume_checkpoint(out, True)
    trainer.train(resume_from_checkpoint=ckpt)
    save_final(trainer, run.processor, out, run.opts, {"stage": "grpo-test"})
    return trainer, calls


def test_grpo_two_steps_video_reaches_the_loss(tiny_vlm, primo_records, tmp_path):
    out = tmp_path / "grpo"
    trainer, calls = _run(tiny_vlm, primo_records, out)
    history = trainer.state.log_history
    losses = [h["loss"] for h in history if "loss" in h]
    assert len(losses) == 2 and all(math.isfinite(x) for x in losses)
    # PRIMO's rewards were computed (a random model earns none of them); the spread reward varied
    assert all("rewards/format_reward/mean" in h and "rewards/accuracy_reward/mean" in h
               for h in history if "loss" in h)
    assert any(h["rewards/spread_reward/std"] > 0 for h in history if "loss" in h)
    # The loss forward passes (with grad) received the clip as video tensors, one video per sequence.
    loss_calls = [c for c in calls if c["grad"] and "vision_tower" not in c]
    assert len(loss_calls) == 2
    assert all(c["video"] and c["rows_match"] and c["videos"] == c["batch"] == 4 for c in loss_calls), loss_calls
    assert trainer.video_forward_calls == 2
    # Generation saw the video too: the vision tower encoded a clip (temporal size 2) without grad.
    assert any(c.get("temporal", 0) > 1 and not c["grad"] for c in calls)
    assert any(c.get("temporal", 0) > 1 and c["grad"] for c in calls)  # and again in the loss pass
    before, after = _weights(tiny_vlm), _weights(out)
    changed = [k for k in before if not np.array_equal(before[k], after[k])]
    assert any(k.startswith("model.layers") for k in changed) and any(k.startswith("visual") for k in changed)
    # The fine-tuned checkpoint scores a query as a `primo` critic.
    critic = make_critic("primo", model=str(out), max_new_tokens=8)
    clip = np.full((4, 64, 64, 3), 90, np.uint8)
    (v,) = critic.assess([CriticQuery("lift the red block", clip[0], clip, clip[-1])])
    assert v.output_tokens and v.raw is not None
    assert json.loads((out / "primo_train.json").read_text())["stage"] == "grpo-test"


def test_grpo_with_reference_kl_uses_video_in_every_pass(tiny_vlm, primo_records, tmp_path):
    """beta > 0 adds the reference-model log-prob pass (no grad); it must see the video as well."""
    trainer, calls = _run(tiny_vlm, primo_records, tmp_path / "kl", lora=True, max_steps=1,
                          config={"beta": 0.04, "lora_r": 4, "lora_alpha": 8})
    no_grad_scoring = [c for c in calls if not c["grad"] and c["video"] and c["rows_match"] and c["batch"] == 4]
    assert no_grad_scoring, calls  # the reference pass (adapters disabled) got the video
    assert trainer.video_forward_calls >= 2
    assert not (tmp_path / "kl" / "adapter_config.json").exists()  # merged into a plain checkpoint


@pytest.mark.slow
def test_grpo_cli_resume(tiny_vlm, primo_records, tmp_path):
    import yaml

    from primo_loop.training.grpo import main

    cfg = tmp_path / "grpo.yaml"
    cfg.write_text(yaml.safe_dump(FAST))
    out = tmp_path / "cli"
    base = ["--model", str(tiny_vlm), "--data", str(primo_records), "--out", str(out), "--config", str(cfg)]
    assert main([*base, "--max-steps", "1"]) == 0
    assert main([*base, "--max-steps", "2", "--resume"]) == 0
    metrics = json.loads((out / "primo_train.json").read_text())["metrics"]
    assert metrics["resumed_from"].endswith("checkpoint-1") and metrics["global_step"] == 2
