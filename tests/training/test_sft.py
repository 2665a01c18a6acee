"""VLM SFT on the tiny Qwen2.5-VL: the video collator, a 2-step run, and the checkpoint reloaded as a critic."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
import yaml

from primo_loop.critics import make_critic
from primo_loop.errors import ConfigError
from primo_loop.types import CriticQuery

FAST = {"per_device_train_batch_size": 2, "gradient_accumulation_steps": 1, "learning_rate": 1e-3,
        "warmup_steps": 0, "save_steps": 1, "nframes": 4}


def _weights(path):
    from safetensors.numpy import load_file

    return load_file(str(path / "model.safetensors"))


def _changed(before: dict, after: dict) -> list[str]:
    return [k for k in before if not np.array_equal(before[k], after[k])]


def _config(tmp_path, **extra):
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump({**FAST, **extra}))
    return str(path)


def test_collator_masks_everything_but_the_response(tiny_vlm, primo_records):
    from primo_loop.critics.primo import load_vlm
    from primo_loop.training.sft import VideoSFTCollator
    from primo_loop.training.vlm_common import VLMTrainOptions, load_training_records, records_dataset

    processor, _ = load_vlm(str(tiny_vlm))
    ds = records_dataset(load_training_records(primo_records), VLMTrainOptions(nframes=4), with_target=True)
    rows = [ds[0], ds[3]]
    assert [p["type"] for p in rows[0]["prompt"][-1]["content"]] == ["image", "video", "image", "text"]
    batch = VideoSFTCollator(processor, fps=2.0)(rows)
    assert batch["input_ids"].shape == batch["labels"].shape == batch["attention_mask"].shape
    assert batch["video_grid_thw"].tolist() == [[2, 4, 4]] * 2  # 4 frames -> 2 temporal patches, 64 px -> 4x4
    assert batch["pixel_values_videos"].shape[0] == 2 * 2 * 4 * 4
    for i, row in enumerate(rows):
        labelled = batch["labels"][i][batch["labels"][i] != -100]
        text = processor.tokenizer.decode(labelled)
        assert text == row["target"] + "<|im_end|>"
        assert row["target"].startswith("<think><planning>") and "</observation><reasoning>" in row["target"]


def test_sft_two_steps_then_reload_as_critic(tiny_vlm, primo_records, tmp_path):
    from primo_loop.training.sft import main

    out = tmp_path / "sft"
    rc = main(["--model", str(tiny_vlm), "--data", str(primo_records.parent), "--out", str(out),
               "--max-steps", "2", "--config", _config(tmp_path)])
    assert rc == 0
    summary = json.loads((out / "primo_train.json").read_text())
    losses = summary["metrics"]["loss_history"]
    assert len(losses) == 2 and all(math.isfinite(x) for x in losses)
    changed = _changed(_weights(tiny_vlm), _weights(out))
    assert any(k.startswith("model.layers") for k in changed) and any(k.startswith("visual") for k in changed)
    assert (out / "checkpoint-2").is_dir()
    critic = make_critic("primo", model=str(out), max_new_tokens=8)
    clip = np.zeros((4, 64, 64, 3), np.uint8)
    (v,) = critic.assess([CriticQuery("lift the red block", clip[0], clip, clip[-1])])
    assert v.output_tokens and v.raw is not None


def test_unknown_config_key_names_the_closest(tiny_vlm, primo_records, tmp_path):
    from primo_loop.training.sft import main

    with pytest.raises(ConfigError, match="Did you mean 'learning_rate'"):
        main(["--model", str(tiny_vlm), "--data", str(primo_records), "--out", str(tmp_path / "x"),
              "--config", _config(tmp_path, learnig_rate=0.1)])


def test_sft_lora_merged_and_resume(tiny_vlm, primo_records, tmp_path):
    from primo_loop.training.sft import main

    out = tmp_path / "lora"
    args = ["--model", str(tiny_vlm), "--data", str(primo_records), "--out", str(out), "--lora",
            "--config", _config(tmp_path, lora_r=4, lora_alpha=8)]
    assert main([*args, "--max-steps", "1"]) == 0
    assert main([*args, "--max-steps", "2", "--resume"]) == 0
    summary = json.loads((out / "primo_train.json").read_text())
    assert summary["lora"] and summary["metrics"]["loss_history"] and (out / "checkpoint-2").is_dir()
    assert summary["metrics"]["resumed_from"].endswith("checkpoint-1") and summary["metrics"]["global_step"] == 2
    assert not (out / "adapter_config.json").exists()  # merged: a plain checkpoint
    changed = _changed(_weights(tiny_vlm), _weights(out))
    assert changed and not any(k.startswith("visual") for k in changed)  # LoRA leaves the vision tower alone
    assert make_critic("primo", model=str(out), max_new_tokens=4).assess(
        [CriticQuery("lift", *(lambda c: (c[0], c, c[-1]))(np.zeros((4, 64, 64, 3), np.uint8)))])
