"""Stage 1: supervised fine-tuning of the VLM critic on PRIMO-format records (TRL ``SFTTrainer``).

    python scripts/train_critic.py sft --model Qwen/Qwen2.5-VL-7B-Instruct --data data/primo --out runs/sft --lora

Each example is PRIMO's chat, [system], user [initial image, clip as video, current image, question], followed
by the target response ``<think><planning>..</planning><observation>..</observation><reasoning>..</reasoning>
</think><answer>NN</answer>``. On sim exports the reasoning is written from privileged events
(:mod:`primo_loop.training.reasoning`); official records bring their own. The loss covers the response tokens
only. The clip is fed as a Qwen2.5-VL video (``pixel_values_videos``), exactly as the critic sees it.
"""
from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

SFT_DEFAULTS: dict[str, Any] = {
    # PRIMO's cold start: lr 1e-6 (full weights), batch 1 x grad-accum 8, 1 epoch, max_grad_norm 4.
    "learning_rate": 1e-6, "per_device_train_batch_size": 1, "gradient_accumulation_steps": 8,
    "num_train_epochs": 1, "max_grad_norm": 4.0, "max_length": 8192,
}
SFT_LORA_LR = 1e-4


class VideoSFTCollator:
    """Batches rows of :func:`~primo_loop.training.vlm_common.records_dataset` for causal-LM training.

    The prompt goes through the processor (images, the clip as a video with its fps metadata); the target's
    tokens are appended after it, so the label mask is exact: -100 on the prompt and on padding (right side).
    A sequence longer than ``max_length`` loses the end of its target, never vision tokens.
    """

    def __init__(self, processor: Any, fps: float = 2.0, max_length: int | None = None):
        self.processor, self.fps, self.max_length = processor, fps, max_length
        tok = processor.tokenizer
        self.pad_id = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
        self.end = tok.eos_token or "<|im_end|>"

    def __call__(self, rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
        import torch

        from primo_loop.training.vlm_common import video_metadata, videos_of

        tok = self.processor.tokenizer
        seqs, labels, mm_types, vision = [], [], [], {}
        for row in rows:
            text = self.processor.apply_chat_template(row["prompt"], tokenize=False, add_generation_prompt=True)
            videos = videos_of(row["prompt"])
            enc = self.processor(text=[text], images=[row["images"]], videos=videos or None,
                                 video_metadata=[video_metadata(v, self.fps) for v in videos] or None,
                                 return_tensors="pt")
            prompt_ids = enc["input_ids"][0]
            target = torch.tensor(tok(row["target"] + self.end, add_special_tokens=False)["input_ids"])
            if self.max_length and len(prompt_ids) + len(target) > self.max_length:
                keep = max(1, self.max_length - len(prompt_ids))
                logger.warning("example %s is %d tokens; its target is cut to %d tokens (max_length=%d)",
                               row.get("problem_id"), len(prompt_ids) + len(target), keep, self.max_length)
                target = target[:keep]
            seqs.append(torch.cat([prompt_ids, target]))
            labels.append(torch.cat([torch.full_like(prompt_ids, -100), target]))
            if "mm_token_type_ids" in enc:
                mm_types.append(torch.cat([enc["mm_token_type_ids"][0], torch.zeros_like(target)]))
            for k in ("pixel_values", "image_grid_thw", "pixel_values_videos", "video_grid_thw",
                      "second_per_grid_ts"):
                if k in enc:
                    vision.setdefault(k, []).append(torch.as_tensor(enc[k]).reshape(-1, *enc[k].shape[1:]))
        n = max(len(s) for s in seqs)

        def pad(xs: list[Any], value: int) -> Any:
            return torch.stack([torch.cat([x, torch.full((n - len(x),), value, dtype=x.dtype)]) for x in xs])

        batch = {"input_ids": pad(seqs, self.pad_id), "labels": pad(labels, -100),
                 "attention_mask": pad([torch.ones_like(s) for s in seqs], 0)}
        if mm_types:
            batch["mm_token_type_ids"] = pad(mm_types, 0)
        batch.update({k: torch.cat(v) for k, v in vision.items()})
        return batch


def train(model: str, data: str, out: str | Path, *, lora: bool = False, config: dict[str, Any] | None = None,
          max_steps: int | None = None, resume: bool = False, data_root: str | None = None) -> Path:
    """Run SFT and write the model to ``out``; returns ``out``. See the module docstring."""
    from primo_loop._tv_shim import install

    install()
    from trl import SFTConfig, SFTTrainer

    from primo_loop.training.vlm_common import lora_config, prepare_run, records_dataset, train_and_save

    run = prepare_run(model, data, out, config, SFTConfig, SFT_DEFAULTS, SFT_LORA_LR, lora=lora,
                      data_root=data_root, max_steps=max_steps)
    kwargs = run.trl_kwargs
    kwargs["dataset_kwargs"] = {**(kwargs.get("dataset_kwargs") or {}), "skip_prepare_dataset": True}
    args = SFTConfig(output_dir=str(run.out), **kwargs)
    run.opts.prompt_profile = run.opts.prompt_profile or "primo-sft"  # the release's SFT layout
    dataset = records_dataset(run.records, run.opts, with_target=True)
    trainer = SFTTrainer(model=run.model, args=args, train_dataset=dataset, processing_class=run.processor,
                         data_collator=VideoSFTCollator(run.processor, fps=run.opts.fps, max_length=args.max_length),
                         peft_config=lora_config(run.opts) if lora else None)
    metrics = train_and_save("sft", trainer, run, model, data, lora=lora, resume=resume)
    out = run.out
    logger.info("SFT done: %s (train_loss=%.4f)", out, metrics.get("train_loss", float("nan")))
    return out


def main(argv: list[str] | None = None) -> int:
    """``train_critic.py sft ...`` (argv excludes the subcommand)."""
    from primo_loop.training.vlm_common import run_cli

    return run_cli("sft", "Supervised fine-tuning of the VLM critic on PRIMO-format "
                        "records (reasoning written from sim events).", train, argv)
