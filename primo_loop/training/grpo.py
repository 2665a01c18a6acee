"""Stage 2: GRPO of the VLM critic with PRIMO's rewards (format + accuracy), the clip reaching the loss as video.

    python scripts/train_critic.py grpo --model runs/sft --data data/primo --out runs/grpo --lora

**Why a TRL subclass and not a custom loop.** TRL 1.16's ``GRPOTrainer`` already gives group sampling,
group-normalised advantages, the clipped objective with a KL term to a reference (PRIMO uses beta = 0.04),
gradient accumulation, logging, checkpoint/resume, LoRA and accelerate/DeepSpeed. What it lacks is *video*:
its generation path passes a prompt's video through the chat template, but the scoring forward passes (old and
reference log-probs, and the loss) re-run the processor with images only, and its batch shuffling knows nothing
of video tensors. :class:`VideoGRPOTrainer` closes exactly that gap through four small overrides, so the clip
reaches every forward pass as ``pixel_values_videos`` (Qwen2.5-VL's temporal merge and M-RoPE time positions,
as PRIMO trains), rather than as loose frames:

1. the processor call of the scoring path gets the batch's videos (and their fps metadata) added;
2. the video tensors of the batch are captured and stored per sample, so TRL's shuffle and split of the
   generation batch keep them aligned with their prompts;
3. the loss step hands them back; 4. the log-prob pass injects them into the model's forward (one chunk, so
   they line up with the batch).

The overrides use TRL private methods, so ``trl`` is pinned to 1.16.0 (checked at construction). Limits: the
vLLM generation path is not video-aware (generation runs in transformers), and the log-prob pass is not chunked.
"""
from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

TRL_VERSION = "1.16.0"
VIDEO_KEYS = ("pixel_values_videos", "video_grid_thw", "second_per_grid_ts")
VISION_TOKENS = ("<|vision_start|>", "<|vision_end|>", "<|vision_pad|>", "<|image_pad|>", "<|video_pad|>")

GRPO_DEFAULTS: dict[str, Any] = {
    # PRIMO's RL stage: plain GRPO, G = 8, beta = 0.04, lr 1e-6 cosine, weight decay 0.01, max_grad_norm 5.
    "num_generations": 8, "beta": 0.04, "learning_rate": 1e-6, "weight_decay": 0.01, "max_grad_norm": 5.0,
    "per_device_train_batch_size": 8, "gradient_accumulation_steps": 1, "num_train_epochs": 1,
    "max_completion_length": 4096, "temperature": 1.0, "loss_type": "grpo", "scale_rewards": "group",
    "save_steps": 100,
}
# max_completion_length 4096 is the paper's (Table 10); the release's launcher passed 768. Set it in the config.
GRPO_LORA_LR = 2e-5


def make_video_grpo_trainer_class() -> type:
    """Define :class:`VideoGRPOTrainer` (deferred so that importing this module stays cheap)."""
    import torch
    import trl
    from trl import GRPOTrainer

    from primo_loop.training.vlm_common import video_metadata, videos_of

    class VideoGRPOTrainer(GRPOTrainer):
        """``GRPOTrainer`` whose prompts may hold video parts (see the module docstring).

        Args:
            video_fps: the fps the clips are presented at (must match the critic's).
            *args, **kwargs: as ``trl.GRPOTrainer``.
        """

        def __init__(self, *args: Any, video_fps: float = 2.0, **kwargs: Any):
            if trl.__version__ != TRL_VERSION:
                raise RuntimeError(f"VideoGRPOTrainer overrides private methods of trl {TRL_VERSION}; found trl "
                                   f"{trl.__version__}. Install trl=={TRL_VERSION}.")
            super().__init__(*args, **kwargs)
            self.video_fps = float(video_fps)
            self._pending_videos: list[Any] | None = None
            self._captured: dict[str, Any] | None = None
            self._loss_video: dict[str, Any] | None = None
            self.video_forward_calls = 0  # forward passes that received video tensors (for tests and logs)
            self._make_processor_video_aware()

        def _make_processor_video_aware(self) -> None:
            """Route the batch's videos into every processor call that has video tokens but no videos."""
            proc, trainer = self.processing_class, self
            base = type(proc)
            video_token = getattr(proc, "video_token", "<|video_pad|>")

            def __call__(self_: Any, *args: Any, **kw: Any) -> Any:  # noqa: N807
                text = kw.get("text", args[1] if len(args) > 1 else None)
                texts = text if isinstance(text, list) else [text] if text is not None else []
                if kw.get("videos") is None and trainer._pending_videos and any(video_token in t for t in texts):
                    kw["videos"] = trainer._pending_videos  # the scoring path: TRL passes images only
                if kw.get("videos") is not None and kw.get("video_metadata") is None:
                    flat = [v for vs in kw["videos"] for v in (vs if _is_video_list(vs) else [vs])]
                    kw["videos"] = flat
                    kw["video_metadata"] = [video_metadata(v, trainer.video_fps) for v in flat]
                out = base.__call__(self_, *args, **kw)
                if "pixel_values_videos" in out:
                    trainer._captured = {k: out[k] for k in VIDEO_KEYS if k in out}
                return out

            # Same class name, so a saved processor_config.json still names the real processor class.
            proc.__class__ = type(base.__name__, (base,), {"__call__": __call__, "__module__": base.__module__})

        def _generate_and_score_completions(self, inputs: list[dict[str, Any]]) -> dict[str, Any]:
            vids = [videos_of(x["prompt"]) for x in inputs]
            has_video = any(vids)
            self._pending_videos = [v for vs in vids for v in vs] if has_video else None
            self._captured = None
            try:
                out = super()._generate_and_score_completions(inputs)
            finally:
                self._pending_videos = None
            if has_video:
                if self._captured is None:
                    raise RuntimeError("Prompts hold videos but no video tensors were produced; video prompts "
                                       "need at least one image part too (PRIMO's anchors).")
                c, counts = self._captured, [len(v) for v in vids]
                grids = list(torch.split(c["video_grid_thw"], counts))
                rows = [int(g.prod(-1).sum()) for g in grids]
                # Per-sample lists: TRL's shuffle/split of the generation batch keeps them with their prompts.
                out["pixel_values_videos"] = list(torch.split(c["pixel_values_videos"], rows))
                out["video_grid_thw"] = grids
                ts = torch.as_tensor(c.get("second_per_grid_ts", [1.0] * sum(counts)), dtype=torch.float32)
                out["second_per_grid_ts"] = list(torch.split(ts.reshape(-1), counts))
            return out

        def _compute_loss(self, model: Any, inputs: dict[str, Any]) -> Any:
            if "pixel_values_videos" in inputs:
                self._loss_video = {k: _cat(inputs[k]).to(self.accelerator.device) for k in VIDEO_KEYS
                                    if k in inputs}
            try:
                return super()._compute_loss(model, inputs)
            finally:
                self._loss_video = None

        def _get_per_token_logps_and_entropies(self, model: Any, input_ids: Any, attention_mask: Any,
                                               logits_to_keep: int, batch_size: int | None = None,
                                               **kw: Any) -> Any:
            video = {k: kw.pop(k) for k in VIDEO_KEYS if k in kw} or self._loss_video
            if not video:
                return super()._get_per_token_logps_and_entropies(model, input_ids, attention_mask,
                                                                  logits_to_keep, batch_size=batch_size, **kw)
            video = {k: (v.to(input_ids.device) if hasattr(v, "to") else v) for k, v in video.items()}
            trainer = self

            def add_video(module: Any, args: Any, kwargs: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
                trainer.video_forward_calls += 1
                return args, {**kwargs, **video}

            hook = self.accelerator.unwrap_model(model).register_forward_pre_hook(add_video, with_kwargs=True)
            try:  # one chunk, so the video tensors line up with the batch
                return super()._get_per_token_logps_and_entropies(model, input_ids, attention_mask, logits_to_keep,
                                                                  batch_size=input_ids.size(0), **kw)
            finally:
                hook.remove()

    return VideoGRPOTrainer


def _is_video_list(x: Any) -> bool:
    """True for a list of videos (each a frame list/array), False for one video given as a list of frames."""
    import numpy as np

    return isinstance(x, list) and bool(x) and (isinstance(x[0], list) or (isinstance(x[0], np.ndarray)
                                                                          and x[0].ndim == 4))


def _cat(x: Any) -> Any:
    import torch

    return torch.cat(list(x)) if isinstance(x, (list, tuple)) else x


def build_trainer(model: str, data: str, out: str | Path, *, lora: bool = False,
                  config: dict[str, Any] | None = None, max_steps: int | None = None, data_root: str | None = None,
                  reward_funcs: Sequence[Callable[..., list[float | None]]] | None = None) -> Any:
    """A ready :class:`VideoGRPOTrainer` (not yet trained) and what :func:`train` needs to finish the run.

    Args:
        model: base checkpoint (hub id or folder), normally the SFT output.
        data: PRIMO records file or folder.
        out: output folder.
        lora: train a LoRA adapter.
        config: :class:`~primo_loop.training.vlm_common.VLMTrainOptions` and ``GRPOConfig`` fields.
        max_steps: stop after this many steps.
        data_root: folder relative video paths resolve against.
        reward_funcs: reward functions in TRL's signature; default PRIMO's, summed
            (:data:`~primo_loop.training.rewards.PRIMO_REWARDS`: accuracy by ``problem_type`` + format; with the
            ``len_control`` option also the length-control bonus).

    Returns:
        ``(trainer, run)``: the trainer and the :class:`~primo_loop.training.vlm_common.PreparedRun`.
    """
    from primo_loop._tv_shim import install

    install()
    from trl import GRPOConfig

    from primo_loop.training.rewards import PRIMO_REWARDS, PRIMO_REWARDS_LEN_CONTROL
    from primo_loop.training.vlm_common import lora_config, prepare_run, records_dataset

    run = prepare_run(model, data, out, config, GRPOConfig, GRPO_DEFAULTS, GRPO_LORA_LR, lora=lora,
                      data_root=data_root, max_steps=max_steps)
    processor, opts, records, kwargs = run.processor, run.opts, run.records, run.trl_kwargs
    opts.prompt_profile = opts.prompt_profile or "primo-rl"  # the release's RL layout unless told otherwise
    tok = processor.tokenizer
    suppress = [i for i in (tok.convert_tokens_to_ids(t) for t in VISION_TOKENS) if i != tok.unk_token_id]
    gen = dict(kwargs.get("generation_kwargs") or {})
    gen.setdefault("suppress_tokens", suppress)  # a sampled vision token would break the next forward pass
    kwargs["generation_kwargs"] = gen
    args = GRPOConfig(output_dir=str(run.out), **kwargs)
    trainer_cls = make_video_grpo_trainer_class()
    trainer = trainer_cls(model=run.model, reward_funcs=list(reward_funcs or (
                              PRIMO_REWARDS_LEN_CONTROL if opts.len_control else PRIMO_REWARDS)), args=args,
                          train_dataset=records_dataset(records, opts), processing_class=processor,
                          peft_config=lora_config(opts) if lora else None, video_fps=opts.fps)
    return trainer, run


def train(model: str, data: str, out: str | Path, *, lora: bool = False, config: dict[str, Any] | None = None,
          max_steps: int | None = None, resume: bool = False, data_root: str | None = None,
          reward_funcs: Sequence[Callable[..., list[float | None]]] | None = None) -> Path:
    """Run GRPO (see :func:`build_trainer`) and write the model to ``out``; returns ``out``."""
    from primo_loop.training.vlm_common import train_and_save

    trainer, run = build_trainer(model, data, out, lora=lora, config=config, max_steps=max_steps,
                                 data_root=data_root, reward_funcs=reward_funcs)
    train_and_save("grpo", trainer, run, model, data, lora=lora, resume=resume,
                   reward_history=lambda t: [h["reward"] for h in t.state.log_history if "reward" in h],
                   video_forward_calls=lambda t: t.video_forward_calls)
    out = run.out
    logger.info("GRPO done: %s (forward passes with video: %d)", out, trainer.video_forward_calls)
    return out


def main(argv: list[str] | None = None) -> int:
    """``train_critic.py grpo ...`` (argv excludes the subcommand)."""
    from primo_loop.training.vlm_common import run_cli

    return run_cli("grpo", "GRPO of the VLM critic with PRIMO's format + accuracy "
                        "rewards, the clip fed as video.", train, argv)
