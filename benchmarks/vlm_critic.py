#!/usr/bin/env python
"""Latency and throughput of the `primo` VLM critic against batch size and token budget.

    python benchmarks/vlm_critic.py                                   # tiny random Qwen2.5-VL on the CPU
    python benchmarks/vlm_critic.py --arch 7b --random-init           # 7B architecture, random weights, bf16 GPU
    python benchmarks/vlm_critic.py --arch 7b --model LeonOverload/PRIMO-R1-7B   # the real checkpoint

Every query is a full critic query (instruction, initial frame, an 8-frame clip, current frame) run through
``VLMCritic.assess``: prompt building, the processor, batched ``generate`` with left padding, parsing. Each
answer is forced to exactly the token budget (``min_new_tokens``), so tokens/s is budget x batch / time; a
real critic stops at its end token, often earlier. For each (budget, batch size) the first call is a warm-up
and the median of ``--repeats`` calls is reported, with the share of time spent in the processor.

``--arch 7b --random-init`` builds Qwen2.5-VL-7B's architecture (8.3B parameters) with random bf16 weights
directly on the GPU, so no download is needed; its processor uses Qwen's default pixel budgets (a 224 px frame
is 64 image tokens; a 224 px 8-frame clip is upscaled to 336 px by the video processor's minimum: 576 video
tokens), and the tiny model's small tokenizer for text (its prompts run ~1.5x longer in tokens than Qwen's
tokenizer makes them, so prefill is slightly pessimistic). Generation speed (tokens/s) does not depend on
the weights' values. It needs ~17 GB of GPU memory plus activations.

Results go to docs/results/vlm_critic_<arch>.md (and .json) with the command and machine that produced them.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# Qwen2.5-VL-7B-Instruct's architecture (config.json of the public checkpoint).
QWEN25_VL_7B = {
    "text": dict(vocab_size=152064, hidden_size=3584, intermediate_size=18944, num_hidden_layers=28,
                 num_attention_heads=28, num_key_value_heads=4, max_position_embeddings=128000,
                 rms_norm_eps=1e-6, tie_word_embeddings=False,
                 rope_parameters={"rope_type": "default", "rope_theta": 1e6, "mrope_section": [16, 24, 24]}),
    "vision": dict(depth=32, hidden_size=1280, intermediate_size=3420, num_heads=16, out_hidden_size=3584,
                   patch_size=14, spatial_merge_size=2, temporal_patch_size=2, window_size=112,
                   fullatt_block_indexes=[7, 15, 23, 31], tokens_per_second=2, in_chans=3, hidden_act="silu"),
}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--arch", choices=["tiny", "7b"], default="tiny")
    p.add_argument("--random-init", action="store_true", help="(7b) random weights built on the device")
    p.add_argument("--model", default=None, help="a checkpoint to load instead (hub id or folder)")
    p.add_argument("--batch-sizes", type=int, nargs="+", default=None, help="default tiny: 1 2 4 8; 7b: 1 4 8 16")
    p.add_argument("--budgets", type=int, nargs="+", default=None, help="tokens per answer; default 16 64 256")
    p.add_argument("--size", type=int, default=None, help="frame side in px (default tiny: 64, 7b: 224)")
    p.add_argument("--frames", type=int, default=8, help="clip length")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--device", default="auto")
    p.add_argument("--dtype", default="auto")
    p.add_argument("--attn-implementation", default=None, help="e.g. sdpa, flash_attention_2")
    p.add_argument("--out", default=None, help="results path without suffix (default docs/results/vlm_critic_<arch>)")
    return p


def random_init(device: str, dtype: str, attn: str | None, arch: dict = QWEN25_VL_7B):
    """(processor, model): a Qwen2.5-VL architecture (default 7B) with random weights, built on ``device``."""
    from primo_loop._tv_shim import install

    install()
    import torch
    import trl
    from transformers import (
        AutoProcessor,
        Qwen2_5_VLConfig,
        Qwen2_5_VLForConditionalGeneration,
        Qwen2_5_VLProcessor,
        Qwen2VLImageProcessor,
        Qwen2VLVideoProcessor,
    )

    from primo_loop.critics.primo import resolve_device_dtype
    from primo_loop.testing.tiny_vlm import VISION_TOKENS, build_tiny_vlm

    dev, dt = resolve_device_dtype(device, dtype)
    tiny = build_tiny_vlm(Path(tempfile.gettempdir()) / "primo_tiny_vlm")
    tok = AutoProcessor.from_pretrained(tiny).tokenizer
    ids = tok.convert_tokens_to_ids
    chat_template = (Path(trl.__file__).parent / "chat_templates" / "qwen2_5_vl.jinja").read_text()
    processor = Qwen2_5_VLProcessor(image_processor=Qwen2VLImageProcessor(), video_processor=Qwen2VLVideoProcessor(),
                                    tokenizer=tok, chat_template=chat_template)
    text = dict(arch["text"], bos_token_id=ids("<|endoftext|>"), eos_token_id=ids("<|im_end|>"),
                pad_token_id=ids("<|endoftext|>"))
    cfg = Qwen2_5_VLConfig(text_config=text, vision_config=dict(arch["vision"]),
                           image_token_id=ids("<|image_pad|>"), video_token_id=ids("<|video_pad|>"),
                           vision_start_token_id=ids("<|vision_start|>"), vision_end_token_id=ids("<|vision_end|>"))
    if attn:
        cfg._attn_implementation = attn
    torch.manual_seed(0)
    with torch.device(dev):
        model = Qwen2_5_VLForConditionalGeneration._from_config(cfg, dtype=dt)
    model.eval()
    model.generation_config.eos_token_id = [ids("<|im_end|>")]
    model.generation_config.pad_token_id = ids("<|endoftext|>")
    model.generation_config.suppress_tokens = [ids(t) for t in VISION_TOKENS]
    return processor, model


def make_queries(n: int, size: int, frames: int, seed: int = 0):
    from primo_loop.types import CriticQuery

    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        clip = rng.integers(0, 256, (frames, size, size, 3), dtype=np.uint8)
        out.append(CriticQuery(instruction="lift the red cube", initial=clip[0], clip=clip, current=clip[-1], step=i))
    return out


def _sync():
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()


def run(args: argparse.Namespace) -> dict:
    import torch

    from primo_loop.critics.primo import VLMCritic

    tiny = args.arch == "tiny"
    batch_sizes = args.batch_sizes or ([1, 2, 4, 8] if tiny else [1, 4, 8, 16])
    budgets = args.budgets or [16, 64, 256]
    size = args.size or (64 if tiny else 224)
    if args.model:
        critic = VLMCritic(args.model, device=args.device, dtype=args.dtype,
                           attn_implementation=args.attn_implementation)
        label = args.model
    elif tiny:
        from primo_loop.testing.tiny_vlm import build_tiny_vlm

        path = build_tiny_vlm(Path(tempfile.gettempdir()) / "primo_tiny_vlm")
        critic = VLMCritic(str(path), device=args.device, dtype=args.dtype)
        label = "tiny random Qwen2.5-VL"
    elif args.random_init:
        if not torch.cuda.is_available() or args.device == "cpu":
            raise SystemExit("--arch 7b --random-init needs a CUDA GPU (8.3B parameters); on a CPU use --arch tiny")
        processor, model = random_init(args.device, args.dtype, args.attn_implementation)
        critic = VLMCritic.from_model(processor, model, name="Qwen2.5-VL-7B architecture, random init")
        label = critic.model_name
    else:
        raise SystemExit("--arch 7b needs --random-init or --model PATH_OR_ID")
    n_params = sum(p.numel() for p in critic.model.parameters())
    queries = make_queries(max(batch_sizes), size, args.frames)
    sample = critic.prepare(queries[:1])
    prompt_tokens = int(sample["input_ids"].shape[1])
    rows = []
    for budget in budgets:
        critic.max_new_tokens = critic.min_new_tokens = budget
        for bs in batch_sizes:
            critic.batch_size = bs
            batch = queries[:bs]
            critic.assess(batch)  # warm-up
            times, prep = [], []
            for _ in range(args.repeats):
                _sync()
                t0 = time.perf_counter()
                critic.prepare(batch)
                _sync()
                prep.append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                verdicts = critic.assess(batch)
                _sync()
                times.append(time.perf_counter() - t0)
            t = statistics.median(times)
            tokens = sum(v.output_tokens or 0 for v in verdicts)
            rows.append({"budget": budget, "batch": bs, "batch_s": t, "latency_s": t / bs, "queries_per_s": bs / t,
                         "tokens_per_s": tokens / t, "output_tokens": tokens / bs,
                         "processor_share": statistics.median(prep) / t})
            print(f"budget {budget:4d}  batch {bs:3d}: {t:8.3f} s/batch  {bs / t:8.2f} queries/s  "
                  f"{tokens / t:9.1f} tokens/s  (processor {100 * statistics.median(prep) / t:.0f}%)", flush=True)
    dev = critic.model.device
    return {
        "command": "python " + " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]),
        "model": label, "parameters": n_params, "dtype": str(critic.model.dtype), "device": str(dev),
        "gpu": torch.cuda.get_device_name(dev) if dev.type == "cuda" else None,
        "cpu": platform.processor() or platform.machine(), "threads": torch.get_num_threads(),
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"), "frame_size": size, "frames": args.frames,
        "prompt_tokens": prompt_tokens, "repeats": args.repeats, "rows": rows,
        "versions": {"torch": torch.__version__, "transformers": __import__("transformers").__version__},
    }


def to_markdown(res: dict) -> str:
    lines = [f"# VLM critic speed: {res['model']}", "",
             f"`{res['command']}`", "",
             f"{res['parameters'] / 1e6:.2f}M parameters, {res['dtype']} on {res['gpu'] or res['device']} "
             f"({res['threads']} torch threads, OMP_NUM_THREADS={res['omp_num_threads']}); "
             f"{res['frames']}-frame clips of {res['frame_size']} px, {res['prompt_tokens']} prompt tokens per query; "
             f"answers forced to the budget; median of {res['repeats']} calls.", "",
             "| token budget | batch | s / batch | latency s / query | queries / s | tokens / s | processor share |",
             "|---:|---:|---:|---:|---:|---:|---:|"]
    for r in res["rows"]:
        lines.append(f"| {r['budget']} | {r['batch']} | {r['batch_s']:.3f} | {r['latency_s']:.3f} | "
                     f"{r['queries_per_s']:.2f} | {r['tokens_per_s']:.1f} | {100 * r['processor_share']:.0f}% |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    res = run(args)
    out = Path(args.out) if args.out else ROOT / "docs" / "results" / f"vlm_critic_{args.arch}"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(res, indent=2))
    out.with_suffix(".md").write_text(to_markdown(res))
    print(f"wrote {out.with_suffix('.md')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
