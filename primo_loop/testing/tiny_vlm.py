"""A tiny random Qwen2.5-VL, built offline and deterministically, for tests, benchmarks and docs.

Same architecture family, processor and chat template as PRIMO-R1-7B (Qwen2.5-VL), so the whole
prompt -> processor -> generate -> parse path and the SFT/GRPO trainers run on a CPU in well under a second
per step. Its weights are random: its answers are gibberish (``progress=None`` verdicts) until fine-tuned.

- The tokenizer is a byte-level BPE trained on our own prompt texts (vocabulary ~1k), with Qwen's special
  tokens and ``<think>``/``<answer>`` (and the reasoning sub-tags) as added, non-special tokens.
- Images and videos are processed with a small pixel budget (min 56x56, max 224x224 per frame) so a 64 px frame
  is 4 vision tokens and an 8-frame 64 px clip is 16.
- The vision special tokens are suppressed in ``generation_config`` (a random model samples them otherwise,
  and the next forward then fails with "Video features and video tokens do not match").

>>> from primo_loop.testing.tiny_vlm import build_tiny_vlm   # doctest: +SKIP
>>> path = build_tiny_vlm("/tmp/tiny-qwen")                   # doctest: +SKIP
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
from pathlib import Path

logger = logging.getLogger(__name__)

RECIPE_VERSION = 1
STAMP = "tiny_vlm.json"

SPECIAL_TOKENS = ["<|im_start|>", "<|im_end|>", "<|object_ref_start|>", "<|object_ref_end|>", "<|box_start|>",
                  "<|box_end|>", "<|quad_start|>", "<|quad_end|>", "<|vision_start|>", "<|vision_end|>",
                  "<|vision_pad|>", "<|image_pad|>", "<|video_pad|>"]
VISION_TOKENS = ["<|vision_start|>", "<|vision_end|>", "<|vision_pad|>", "<|image_pad|>", "<|video_pad|>"]
TAG_TOKENS = ["<think>", "</think>", "<answer>", "</answer>", "<planning>", "</planning>", "<observation>",
              "</observation>", "<reasoning>", "</reasoning>"]
INSTRUCTIONS = ["lift the cube", "stack the red cube on the green cube", "open the door", "pick up the can and "
                "place it in the bin", "turn the nut onto the peg", "wipe the table", "lift the pot with both arms"]
PIXEL_BUDGET = {"shortest_edge": 56 * 56, "longest_edge": 224 * 224}


def _corpus() -> list[str]:
    """The texts the tokenizer is trained on: our prompts, reasoning, numbers (deterministic order)."""
    from primo_loop.prompting import DEFAULT_TEMPLATE, format_response, progress_question
    from primo_loop.training.reasoning import write_reasoning

    texts = [DEFAULT_TEMPLATE.system or ""]
    steps = ["reach the object", "grasp the object", "lift the object", "move it to the goal", "release it"]
    for i, ins in enumerate(INSTRUCTIONS):
        texts.append(DEFAULT_TEMPLATE.render_question(progress_question(ins), instruction=ins))
        for p in (0, 25, 50, 75, 100):
            texts.append(format_response(p, write_reasoning(ins, steps[: 2 + i % 4], steps[: p // 25],
                                                             p, failed=p == 50, key=f"{i}-{p}")))
    texts.append(" ".join(str(i) for i in range(101)))
    texts.append("The progress is about 40%. Approximately 55 percent, roughly 70, ~30, 40-50, 3/4, 0.5.")
    return texts * 3


def _recipe_hash(seed: int) -> str:
    h = hashlib.sha1(json.dumps({"v": RECIPE_VERSION, "seed": seed, "corpus": _corpus()}).encode())
    return h.hexdigest()[:16]


def build_tiny_vlm(out_dir: str | os.PathLike, *, seed: int = 0, force: bool = False) -> Path:
    """Build (or reuse) a tiny random Qwen2.5-VL checkpoint in ``out_dir``.

    The build is deterministic for a given ``seed`` and recipe, takes ~1 s, and is skipped when ``out_dir``
    already holds the same build (a stamp file records the recipe hash). The folder loads with
    ``AutoProcessor.from_pretrained`` + ``AutoModelForImageTextToText.from_pretrained`` and as
    ``make_critic("primo", model=out_dir)``.

    Args:
        out_dir: the checkpoint folder (created; replaced atomically when rebuilt).
        seed: torch seed of the random weights.
        force: rebuild even if a matching build exists.

    Returns:
        ``out_dir`` as a Path.
    """
    out = Path(out_dir)
    recipe = _recipe_hash(seed)
    stamp = out / STAMP
    if not force and stamp.is_file():
        try:
            if json.loads(stamp.read_text()).get("recipe") == recipe:
                return out
        except (OSError, ValueError):
            pass
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        _build(tmp, seed)
        (tmp / STAMP).write_text(json.dumps({"recipe": recipe, "seed": seed, "version": RECIPE_VERSION}))
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    logger.info("built tiny Qwen2.5-VL in %s", out)
    return out


def _build(out: Path, seed: int) -> None:
    from primo_loop._tv_shim import install

    install()
    import torch
    import trl
    from tokenizers import AddedToken
    from transformers import (
        Qwen2_5_VLConfig,
        Qwen2_5_VLForConditionalGeneration,
        Qwen2_5_VLProcessor,
        Qwen2Tokenizer,
        Qwen2VLImageProcessor,
        Qwen2VLVideoProcessor,
    )

    base = Qwen2Tokenizer()
    tok = base.train_new_from_iterator(_corpus(), vocab_size=1024)
    tok.add_special_tokens({"additional_special_tokens": SPECIAL_TOKENS})
    tok.add_tokens([AddedToken(t, special=False, normalized=False) for t in TAG_TOKENS])
    tok.eos_token, tok.pad_token = "<|im_end|>", "<|endoftext|>"
    ids = tok.convert_tokens_to_ids
    # Qwen2.5-VL's official chat template, as TRL ships it.
    chat_template = (Path(trl.__file__).parent / "chat_templates" / "qwen2_5_vl.jinja").read_text()
    processor = Qwen2_5_VLProcessor(
        image_processor=Qwen2VLImageProcessor(size=dict(PIXEL_BUDGET)),
        video_processor=Qwen2VLVideoProcessor(size=dict(PIXEL_BUDGET), cap_pixels_per_frame=True),
        tokenizer=tok, chat_template=chat_template)
    cfg = Qwen2_5_VLConfig(
        text_config=dict(vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=8192,
                         rope_parameters={"rope_type": "default", "rope_theta": 1e6, "mrope_section": [2, 3, 3]},
                         bos_token_id=ids("<|endoftext|>"), eos_token_id=ids("<|im_end|>"),
                         pad_token_id=ids("<|endoftext|>"), tie_word_embeddings=False),
        vision_config=dict(depth=2, hidden_size=32, intermediate_size=64, num_heads=2, out_hidden_size=64,
                           patch_size=14, spatial_merge_size=2, temporal_patch_size=2, window_size=56,
                           fullatt_block_indexes=[1], tokens_per_second=2),
        image_token_id=ids("<|image_pad|>"), video_token_id=ids("<|video_pad|>"),
        vision_start_token_id=ids("<|vision_start|>"), vision_end_token_id=ids("<|vision_end|>"))
    torch.manual_seed(seed)
    model = Qwen2_5_VLForConditionalGeneration(cfg)
    gen = model.generation_config
    gen.eos_token_id = [ids("<|im_end|>"), ids("<|endoftext|>")]
    gen.pad_token_id = ids("<|endoftext|>")
    gen.suppress_tokens = [ids(t) for t in VISION_TOKENS]
    model.save_pretrained(out)
    processor.save_pretrained(out)
