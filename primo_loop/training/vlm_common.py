"""What VLM SFT and GRPO share: the command line, configs, PRIMO records as lazy video datasets, LoRA, saving.

Both trainers take ``--model PATH_OR_ID --data DIR|FILE.jsonl --out DIR [--lora] [--config FILE.yaml]
[--max-steps N] [--resume]``. A YAML config holds two kinds of keys: :class:`VLMTrainOptions` fields (data,
frames, LoRA, saving) and any field of the TRL config (``SFTConfig`` / ``GRPOConfig``, e.g. ``learning_rate``,
``num_generations``, ``bf16``, ``gradient_accumulation_steps``); an unknown key is an error that names the
closest valid one.

Datasets stay light: a ``datasets.Dataset`` of record fields, with a transform that decodes each record's mp4
into [initial, clip, current] frames only when a row is read, so a large export never sits in memory.

The final model is written to ``--out`` itself (merged with its LoRA adapter by default), beside the processor,
so ``make_critic("primo", model=OUT)`` loads it; TRL's resumable checkpoints go to ``OUT/checkpoint-N``.
"""
from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from primo_loop.errors import ConfigError, DatasetError, closest

logger = logging.getLogger(__name__)

LORA_TARGET = r".*language_model.*\.(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj)"
"""LoRA on the language model's attention and MLP projections; the vision tower (whose MLP layers share the
names) stays frozen, as in Qwen2.5-VL fine-tuning recipes."""


@dataclass
class VLMTrainOptions:
    """Our training options (the rest of a YAML config goes to the TRL config).

    Attributes:
        data_root: folder that relative media paths resolve against (default ``$VIDEO_DATA_ROOT``, then
            ``$PRIMO_DATA_ROOT``, else the JSONL's folder).
        nframes: frames in each clip (default 16, as the release trains).
        frame_size: resize frames to this square side (None keeps the video's size).
        max_pixels: the most pixels of an anchor image (default 401408, the release's RL cap; None: no cap).
        fps: frame rate the clip is presented at (Qwen's temporal positions; must match inference, default 2).
        prompt_profile: ``primo-sft`` or ``primo-rl`` (default: the stage's own, as the release trains: SFT
            with the system prompt, GRPO without it and with the RL prefix); see :mod:`primo_loop.prompting`.
        prompt_file: the prompt wording (a release checkout, its prompt module, or a text/JSON/YAML file;
            default ours); the critic must then be built with the same ``prompt_file``.
        len_control: (GRPO) add the release's length-control bonus to the rewards (its released run had it on).
        limit: use only the first N records (smoke runs).
        lora_r: LoRA rank.
        lora_alpha: LoRA scaling numerator.
        lora_dropout: LoRA dropout.
        lora_target: regex of the module names LoRA adapts.
        merge_lora: write the final model merged with its adapter (loads anywhere); else the adapter folder.
        dtype: model dtype: ``auto`` (bf16 on CUDA, fp32 on CPU), ``bf16``, ``fp16``, ``fp32``.
        attn_implementation: e.g. ``flash_attention_2`` on GPUs that have it.
    """

    data_root: str | None = None
    nframes: int = 16
    frame_size: int | None = None
    max_pixels: int | None = 401408
    fps: float = 2.0
    prompt_profile: str | None = None
    prompt_file: str | None = None
    len_control: bool = False
    limit: int | None = None
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.05
    lora_target: str = LORA_TARGET
    merge_lora: bool = True
    dtype: str = "auto"
    attn_implementation: str | None = None

    def __post_init__(self) -> None:
        if self.nframes < 1:
            raise ConfigError(f"Expected `nframes` >= 1, actually: {self.nframes}")
        if self.frame_size is not None and self.frame_size < 28:
            raise ConfigError(f"Expected `frame_size` >= 28 (Qwen2.5-VL patches are 28 px) or null, actually: "
                              f"{self.frame_size}")
        if self.fps <= 0:
            raise ConfigError(f"Expected `fps` > 0, actually: {self.fps}")
        if self.lora_r < 1:
            raise ConfigError(f"Expected `lora_r` >= 1, actually: {self.lora_r}")


def build_parser(prog: str, description: str) -> argparse.ArgumentParser:
    """The command line both trainers share."""
    p = argparse.ArgumentParser(prog=prog, description=description)
    p.add_argument("--model", required=True, help="base checkpoint: hub id or local folder (Qwen2.5-VL family)")
    p.add_argument("--data", required=True, help="PRIMO-format records: a .jsonl/.json file or a folder of them")
    p.add_argument("--out", required=True, help="output folder (final model + checkpoint-N folders)")
    p.add_argument("--lora", action="store_true", help="train a LoRA adapter instead of all weights")
    p.add_argument("--config", default=None, help="YAML file: VLMTrainOptions fields and TRL config fields")
    p.add_argument("--max-steps", type=int, default=None, help="stop after N optimizer steps")
    p.add_argument("--resume", action="store_true", help="continue from the latest OUT/checkpoint-N")
    p.add_argument("--data-root", default=None, help="folder relative video paths resolve against")
    return p


def run_cli(kind: str, description: str, train: Any, argv: list[str] | None = None) -> int:
    """``train_critic.py sft|grpo ...``: parse the shared command line, run ``train``, say where the model is."""
    args = build_parser(f"train_critic.py {kind}", description).parse_args(argv)
    train(args.model, args.data, args.out, lora=args.lora, config=load_config(args.config),
          max_steps=args.max_steps, resume=args.resume, data_root=args.data_root)
    if os.environ.get("RANK", "0") == "0":  # once, not per process under accelerate
        print(f"{kind.upper()} model written to {args.out}; use it with: --critic primo --critic-option "
              f"model={args.out}")
    return 0


def load_config(path: str | None) -> dict[str, Any]:
    """The YAML config as a dict ({} without one)."""
    if not path:
        return {}
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"Config file not found: {p}")
    import yaml

    try:
        data = yaml.safe_load(p.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"Could not parse {p}: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"Expected {p} to hold a mapping of options, actually: {type(data).__name__}")
    return data


def split_config(config: dict[str, Any], trl_config_cls: type) -> tuple[VLMTrainOptions, dict[str, Any]]:
    """Split a config into our options and TRL config kwargs; unknown keys raise with the closest name."""
    ours = {f.name for f in dataclasses.fields(VLMTrainOptions)}
    theirs = {f.name for f in dataclasses.fields(trl_config_cls)}
    unknown = [k for k in config if k not in ours and k not in theirs]
    if unknown:
        k = unknown[0]
        near = closest(k, sorted(ours | theirs))
        raise ConfigError(f"Unknown training option {k!r} (not a VLMTrainOptions or {trl_config_cls.__name__} "
                          f"field).{f' Did you mean {near!r}?' if near else ''}")
    opts = VLMTrainOptions(**{k: v for k, v in config.items() if k in ours})
    return opts, {k: v for k, v in config.items() if k in theirs and k not in ours}


def find_records(data: str | os.PathLike) -> list[Path]:
    """The records files of ``--data``: the file itself, or every ``*.jsonl`` / ``*.json`` in a folder."""
    p = Path(data)
    if p.is_file():
        return [p]
    if p.is_dir():
        files = sorted(p.glob("*.jsonl")) or sorted(f for f in p.glob("*.json") if f.name != "index.json")
        if files:
            return files
        raise DatasetError(f"No PRIMO records (*.jsonl or *.json) in {p}; export some with "
                           f"`python scripts/export_primo.py`.")
    raise DatasetError(f"--data {p} does not exist")


def load_training_records(data: str | os.PathLike, data_root: str | None = None,
                          limit: int | None = None) -> list[dict[str, Any]]:
    """PRIMO records with a label and a video, from a file or folder (see :func:`find_records`)."""
    from primo_loop.data.primo_format import load_records

    records: list[dict[str, Any]] = []
    for f in find_records(data):
        records.extend(load_records(f, data_root=data_root))
    usable = [r for r in records if r.get("media_path") and r.get("progress") is not None]
    if len(usable) < len(records):
        logger.warning("skipping %d of %d records without a video or a label", len(records) - len(usable),
                       len(records))
    if limit is not None:
        usable = usable[: int(limit)]
    if not usable:
        raise DatasetError(f"No usable PRIMO records (with a video path and a progress label) in {data}")
    return usable


def records_dataset(records: Sequence[dict[str, Any]], opts: VLMTrainOptions, *,
                    with_target: bool = False) -> Any:
    """A ``datasets.Dataset`` whose rows read as TRL conversational vision rows.

    Stored columns are the record's fields (strings and numbers). Reading a row decodes its video and yields:
    ``prompt`` (messages in PRIMO order: image placeholder, the clip as a video part, image placeholder,
    question), ``images`` ([initial, current] as PIL images, filling the placeholders), ``solution``,
    ``progress`` (0-100) and, with ``with_target``, ``target`` (the SFT response written by
    :func:`primo_loop.training.reasoning.sft_target`).
    """
    import datasets
    from datasets.table import InMemoryTable

    from primo_loop.training.reasoning import sft_target

    rows = []
    for r in records:
        row = {"problem_id": str(r.get("problem_id", "")), "problem": str(r.get("problem") or ""),
               "problem_type": str(r.get("problem_type") or "numerical"), "instruction": r.get("instruction"),
               "media_path": str(r["media_path"]), "progress": float(r["progress"]),
               "solution": r.get("solution") or f"<answer>{int(round(float(r['progress'])))}</answer>"}
        if with_target:
            row["target"] = sft_target(r)
        rows.append(row)
    # Built from an Arrow table with our own fingerprint: datasets 5.2.0 fingerprints a new table by pickling
    # it with dill, which fails under pyarrow 25 (the newest pyarrow that runs with numpy 1.x).
    fingerprint = hashlib.sha1(json.dumps(rows, sort_keys=True, default=str).encode()).hexdigest()[:16]
    ds = datasets.Dataset(InMemoryTable.from_pylist(rows), fingerprint=f"primo-{fingerprint}")
    ds.set_transform(_RowReader(opts))
    return ds


class _RowReader:
    """The dataset transform: record fields -> prompt messages + images (+ video inside the prompt)."""

    def __init__(self, opts: VLMTrainOptions):
        from primo_loop.prompting import DEFAULT_PROFILE, resolve_template

        self.opts = opts
        self.template = resolve_template(opts.prompt_file, opts.prompt_profile or DEFAULT_PROFILE)

    def __call__(self, batch: dict[str, list[Any]]) -> dict[str, list[Any]]:
        from PIL import Image

        from primo_loop.data.primo_format import load_record_frames
        from primo_loop.prompting import build_messages

        out: dict[str, list[Any]] = {k: list(v) for k, v in batch.items()}
        out["prompt"], out["images"] = [], []
        for i in range(len(batch["media_path"])):
            rec = {k: batch[k][i] for k in batch}
            initial, clip, current = load_record_frames(rec, nframes=self.opts.nframes,
                                                        image_size=self.opts.frame_size)
            initial, current = (_sized(f, self.opts.max_pixels) for f in (initial, current))
            clip = _sized(clip)
            out["prompt"].append(build_messages(rec["problem"], clip=clip, template=self.template,
                                                instruction=rec.get("instruction"),
                                                question_type=rec.get("problem_type") or "numerical"))
            out["images"].append([Image.fromarray(initial), Image.fromarray(current)])
        return out


def _sized(frames: Any, max_pixels: int | None = None) -> Any:
    """Frames scaled down to at most ``max_pixels`` each (aspect kept; the release caps its images so) and up
    to a shorter side of 56 px (Qwen2.5-VL cannot patch tiny frames)."""
    from primo_loop.critics.primo import _fit, _to_uint8

    return _to_uint8(frames, _fit(*frames.shape[-3:-1], max_pixels))


def video_metadata(frames: Sequence[Any], fps: float) -> dict[str, Any]:
    """The metadata Qwen's video processor needs for a frame list (else it assumes 24 fps)."""
    n = len(frames)
    return {"fps": float(fps), "total_num_frames": n, "frames_indices": list(range(n))}


def videos_of(prompt: Sequence[dict[str, Any]]) -> list[Any]:
    """The video payloads of a prompt's parts, in order."""
    return [p["video"] for m in prompt if isinstance(m.get("content"), list) for p in m["content"]
            if p.get("type") == "video" and p.get("video") is not None]


def lora_config(opts: VLMTrainOptions) -> Any:
    from peft import LoraConfig

    return LoraConfig(r=opts.lora_r, lora_alpha=opts.lora_alpha, lora_dropout=opts.lora_dropout,
                      target_modules=opts.lora_target, task_type="CAUSAL_LM")


def load_model_for_training(model: str, opts: VLMTrainOptions) -> tuple[Any, Any]:
    """``(processor, model)`` in train mode; the same loader as the critic (adapters merged)."""
    from primo_loop.critics.primo import load_vlm

    distributed = int(os.environ.get("WORLD_SIZE", "1")) > 1
    # Under accelerate/DeepSpeed the trainer places the model; load it on the CPU (or this rank's GPU).
    device = "cpu" if distributed else "auto"
    if distributed:
        import torch

        if torch.cuda.is_available():
            device = f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}"
    processor, net = load_vlm(model, device=device, dtype=opts.dtype,
                              attn_implementation=opts.attn_implementation)
    net.train()
    return processor, net


def trl_defaults(device_is_cuda: bool) -> dict[str, Any]:
    """TRL config values both trainers start from (a YAML config overrides them)."""
    import torch

    bf16 = device_is_cuda and torch.cuda.is_bf16_supported()
    return {"logging_steps": 1, "save_steps": 200, "save_total_limit": 2, "report_to": "none",
            "remove_unused_columns": False, "bf16": bf16, "seed": 42, "lr_scheduler_type": "cosine",
            "warmup_steps": 0.03, "use_cpu": not device_is_cuda, "dataloader_num_workers": 0}


def resume_checkpoint(out: Path, resume: bool) -> str | None:
    """The latest ``out/checkpoint-N`` to resume from (by step number), or None (fresh start)."""
    if not resume:
        return None
    ckpts = sorted((p for p in out.glob("checkpoint-*") if p.name.split("-")[-1].isdigit()),
                   key=lambda p: int(p.name.split("-")[-1]))
    if not ckpts:
        logger.warning("--resume: no checkpoint-N in %s yet; starting fresh", out)
        return None
    logger.info("resuming from %s", ckpts[-1])
    return str(ckpts[-1])


def save_final(trainer: Any, processor: Any, out: Path, opts: VLMTrainOptions, summary: dict[str, Any]) -> Path:
    """Write the trained model to ``out`` so ``make_critic("primo", model=out)`` loads it.

    A LoRA model is merged into its base (unless ``merge_lora`` is false or DeepSpeed ZeRO-3 shards it, then
    the adapter is saved; the critic merges adapters at load time).
    """
    model = trainer.accelerator.unwrap_model(trainer.model)
    is_peft = hasattr(model, "peft_config")
    zero3 = getattr(trainer, "is_deepspeed_enabled", False) and \
        getattr(trainer.accelerator.state, "deepspeed_plugin", None) is not None and \
        trainer.accelerator.state.deepspeed_plugin.zero_stage == 3
    if is_peft and opts.merge_lora and not zero3:
        if trainer.accelerator.is_main_process:
            merged = model.merge_and_unload()
            merged.save_pretrained(out)
    else:
        trainer.save_model(str(out))
    if trainer.accelerator.is_main_process:
        processor.save_pretrained(out)
        (out / "primo_train.json").write_text(json.dumps(summary, indent=2, default=str))
    return out


@dataclass
class RunSummary:
    """What a run writes beside its model (``primo_train.json``)."""

    stage: str
    base_model: str
    data: str
    records: int
    lora: bool
    options: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)


@dataclass
class PreparedRun:
    """What SFT and GRPO share before building their trainer (see :func:`prepare_run`)."""

    out: Path
    opts: VLMTrainOptions
    records: list[dict[str, Any]]
    processor: Any
    model: Any
    trl_kwargs: dict[str, Any]


def prepare_run(model: str, data: str, out: str | Path, config: dict[str, Any] | None, trl_config_cls: type,
                defaults: dict[str, Any], lora_lr: float, *, lora: bool, data_root: str | None,
                max_steps: int | None) -> PreparedRun:
    """The common start of a fine-tuning run: output folder, our options split from TRL's, the records, the
    model and processor, and the TRL config kwargs (device defaults, then the trainer's defaults, the LoRA
    learning rate, the user's config, and ``max_steps`` last)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    opts, user_kwargs = split_config(dict(config or {}), trl_config_cls)
    if data_root is not None:
        opts.data_root = data_root
    records = load_training_records(data, opts.data_root, opts.limit)
    processor, net = load_model_for_training(model, opts)
    kwargs = {**trl_defaults(net.device.type == "cuda"), **defaults}
    if lora:
        kwargs["learning_rate"] = lora_lr
    kwargs.update(user_kwargs)
    if max_steps is not None:
        kwargs["max_steps"] = int(max_steps)
    return PreparedRun(out, opts, list(records), processor, net, kwargs)


def train_and_save(kind: str, trainer: Any, run: PreparedRun, model: str, data: str, *, lora: bool, resume: bool,
                   **extra_metrics: Any) -> dict[str, Any]:
    """Train (resuming from the newest checkpoint in ``run.out`` if asked), then save the final model and a
    run summary; returns the metrics (``extra_metrics`` values may be callables of the trainer)."""
    import time

    t0 = time.perf_counter()
    resumed_from = resume_checkpoint(run.out, resume)
    result = trainer.train(resume_from_checkpoint=resumed_from)
    metrics = {**result.metrics, "wall_s": time.perf_counter() - t0, "global_step": trainer.state.global_step,
               "resumed_from": resumed_from,
               "loss_history": [h["loss"] for h in trainer.state.log_history if "loss" in h]}
    metrics.update({k: v(trainer) if callable(v) else v for k, v in extra_metrics.items()})
    summary = RunSummary(kind, model, str(data), len(run.records), lora, vars(run.opts), metrics)
    save_final(trainer, run.processor, run.out, run.opts, vars(summary))
    return metrics
