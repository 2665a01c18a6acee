"""The ``primo`` critic: a Qwen2.5-VL-family checkpoint (PRIMO-R1-7B by default) run with transformers.

One query becomes one chat: [system prompt], then a user turn [initial image, video clip, current image,
question] (see :mod:`primo_loop.prompting` for the ``primo-sft`` and ``primo-rl`` profiles). Queries are batched
with left padding and decoded with the release's evaluation settings by default (temperature 0.1, top_p 0.001,
which keeps only the most likely token, so it decodes as greedy does; up to 4096 new tokens). The anchors keep
their own resolution, capped at ``max_pixels``. The answer is read into progress in [0, 1] by the lenient loop
reader, or by the release's benchmark reader with ``answer_parsing="official"`` (:mod:`primo_loop.answers`); the
reasoning and raw text stay in the verdict.

>>> critic = make_critic("primo", model="LeonOverload/PRIMO-R1-7B")          # doctest: +SKIP
>>> critic = make_critic("primo", model="runs/sft/final", max_new_tokens=256)  # doctest: +SKIP
"""
from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from primo_loop.answers import ANSWER_MODES, read_answer
from primo_loop.errors import ConfigError, CriticUnavailableError, check_choice
from primo_loop.prompting import DEFAULT_PROFILE, PromptTemplate, build_messages, query_question, resolve_template
from primo_loop.types import CriticQuery, CriticVerdict

logger = logging.getLogger(__name__)

DEFAULT_MODEL = "LeonOverload/PRIMO-R1-7B"
VISION_TOKENS = ("<|vision_start|>", "<|vision_end|>", "<|vision_pad|>", "<|image_pad|>", "<|video_pad|>")
MIN_SIDE = 56  # Qwen2.5-VL rounds sides to multiples of 28 and refuses sides below 28
MAX_PIXELS = 401408  # the release's image pixel cap (RL stage); anchors above it are scaled down
MAX_NEW_TOKENS = 4096  # the release's evaluation budget
TEMPERATURE, TOP_P = 0.1, 0.001  # the release's evaluation sampling (top_p 0.001 keeps the top token only)


def resolve_device_dtype(device: str = "auto", dtype: str = "auto") -> tuple[Any, Any]:
    """``(torch.device, torch.dtype)``: auto picks CUDA with bf16 (fp16 where bf16 is unsupported), else CPU fp32."""
    import torch

    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    dev = torch.device(device)
    if dtype == "auto":
        if dev.type == "cuda":
            return dev, torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return dev, torch.float32
    names = {"bf16": "bfloat16", "fp16": "float16", "half": "float16", "fp32": "float32", "float": "float32"}
    dt = getattr(torch, names.get(str(dtype), str(dtype)), None)
    if not isinstance(dt, torch.dtype):
        raise ConfigError(f"Expected `dtype` to be auto, bf16, fp16, fp32 or a torch dtype name, actually: {dtype!r}")
    return dev, dt


def _looks_like_path(model: str) -> bool:
    """A hub id is ``name`` or ``owner/name``; anything else (``./x``, ``/x``, ``a/b/c``, ``~``) is a path."""
    return model.startswith((".", "/", "~")) or model.count("/") > 1 or "\\" in model


def load_vlm(model: str, *, device: str = "auto", dtype: str = "auto", attn_implementation: str | None = None,
             revision: str | None = None, trust_remote_code: bool = False) -> tuple[Any, Any]:
    """Load ``(processor, model)`` from a local folder or a hub id, ready for generation (eval mode).

    A folder holding a LoRA adapter (``adapter_config.json``, no ``config.json``) is loaded onto its base model
    and merged. Used by the critic, the trainers and the benchmark.

    Raises:
        CriticUnavailableError: the path does not exist, holds no checkpoint, or loading fails (the message says
            what to do).
    """
    from primo_loop._tv_shim import install

    install()
    try:
        from transformers import AutoModelForImageTextToText, AutoProcessor
    except ImportError as exc:
        raise CriticUnavailableError(
            f"The primo critic needs transformers ({exc}); install the VLM extras: `pip install -e .[vlm]` "
            f"or `make venv`.") from exc
    dev, dt = resolve_device_dtype(device, dtype)
    src = Path(model).expanduser()
    is_local = src.exists()
    if not is_local and _looks_like_path(model):
        raise CriticUnavailableError(
            f"No model at {model!r}: the folder does not exist. Pass `model=` a folder holding a Qwen2.5-VL "
            f"checkpoint (config.json + weights + processor files, e.g. the `--out` folder of "
            f"`scripts/train_critic.py sft|grpo`), or a hub id such as {DEFAULT_MODEL!r}.")
    if is_local and not ((src / "config.json").is_file() or (src / "adapter_config.json").is_file()):
        raise CriticUnavailableError(
            f"{src} holds no model (no config.json or adapter_config.json). Point `model=` at the checkpoint "
            f"folder itself (for a training run: its `--out` folder, or a `checkpoint-N` folder inside it).")
    kwargs: dict[str, Any] = {"dtype": dt, "revision": revision, "trust_remote_code": trust_remote_code}
    if attn_implementation:
        kwargs["attn_implementation"] = attn_implementation
    if dev.type == "cuda":
        kwargs["device_map"] = str(dev)
    where = str(src) if is_local else model
    try:
        adapter = is_local and (src / "adapter_config.json").is_file() and not (src / "config.json").is_file()
        if adapter:
            import json

            from peft import PeftModel

            base = json.loads((src / "adapter_config.json").read_text()).get("base_model_name_or_path")
            if not base:
                raise CriticUnavailableError(f"{src}/adapter_config.json names no base model "
                                             "(`base_model_name_or_path`); merge the adapter or fix the file.")
            net = AutoModelForImageTextToText.from_pretrained(base, **kwargs)
            net = PeftModel.from_pretrained(net, str(src)).merge_and_unload()
            proc_src = str(src) if (src / "processor_config.json").is_file() or \
                (src / "preprocessor_config.json").is_file() else base
        else:
            net = AutoModelForImageTextToText.from_pretrained(where, **kwargs)
            proc_src = where
        processor = AutoProcessor.from_pretrained(proc_src, revision=revision, trust_remote_code=trust_remote_code)
    except CriticUnavailableError:
        raise
    except Exception as exc:  # noqa: BLE001 - hub, IO and config errors come in many types
        hint = ("check the folder's files" if is_local else
                f"if you meant a local folder, {src.resolve()} does not exist; for a hub model, download it where "
                f"there is internet (`hf download {model} --local-dir DIR`, then model=DIR), unset "
                f"HF_HUB_OFFLINE if you are online, or serve it with vLLM and use the `remote` critic "
                f"(docs/vlm.md)")
        raise CriticUnavailableError(f"Could not load the VLM critic from {where!r} "
                                     f"({type(exc).__name__}: {str(exc)[:300]}); {hint}.") from exc
    if dev.type != "cuda":
        net.to(dev)
        n = sum(p.numel() for p in net.parameters())
        if n > 1e9:
            logger.warning("running a %.1fB-parameter VLM on %s: expect minutes per query; use a GPU or the "
                           "remote backend", n / 1e9, dev)
    net.eval()
    processor.tokenizer.padding_side = "left"  # not persisted by save_pretrained; batched generate needs it
    return processor, net


def _to_uint8(arr: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Resize one frame or a stack of frames to ``shape`` (H, W) with PIL bilinear; no-op if already there."""
    if arr.shape[-3:-1] == tuple(shape):
        return arr
    from PIL import Image

    def one(f: np.ndarray) -> np.ndarray:
        return np.asarray(Image.fromarray(np.ascontiguousarray(f)).resize((shape[1], shape[0]), Image.BILINEAR))

    return one(arr) if arr.ndim == 3 else np.stack([one(f) for f in arr])


def _fit(h: int, w: int, max_pixels: int | None) -> tuple[int, int]:
    """(H, W) scaled down to at most ``max_pixels`` (aspect kept) and up to a shorter side of 56 px."""
    if max_pixels and h * w > max_pixels:
        s = (max_pixels / (h * w)) ** 0.5
        h, w = max(1, int(h * s)), max(1, int(w * s))
    if min(h, w) < MIN_SIDE:
        s = MIN_SIDE / min(h, w)
        h, w = int(round(h * s)), int(round(w * s))
    return h, w


def normalize_frames(query: CriticQuery, frame_size: int | tuple[int, int] | None = None,
                     max_pixels: int | None = MAX_PIXELS) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The query's frames as the model gets them.

    With ``frame_size``, every frame is resized to it. Without, the clip keeps its size and the anchors keep
    theirs (the release gives the model its anchors at the video's full resolution), capped at ``max_pixels``
    each (aspect kept). Sides below 56 px are scaled up (Qwen2.5-VL cannot patch smaller frames).
    """
    if frame_size is not None:
        size = (frame_size, frame_size) if isinstance(frame_size, int) else tuple(frame_size)
        clip_hw = initial_hw = current_hw = _fit(*size, None)
    else:
        clip_hw = _fit(*query.clip.shape[1:3], None)
        initial_hw = _fit(*query.initial.shape[:2], max_pixels)
        current_hw = _fit(*query.current.shape[:2], max_pixels)
    return (_to_uint8(query.initial, initial_hw), _to_uint8(query.clip, clip_hw),
            _to_uint8(query.current, current_hw))


def _int_option(name: str, value: Any, minimum: int) -> int:
    try:
        out = int(value)
    except (TypeError, ValueError):
        raise ConfigError(f"Expected `{name}` to be an integer >= {minimum}, actually: {value!r}") from None
    if out < minimum:
        raise ConfigError(f"Expected `{name}` to be an integer >= {minimum}, actually: {value!r}")
    return out


def _frame_size_option(value: Any) -> int | tuple[int, int] | None:
    if value is None or value == "" or value == "none":
        return None
    if isinstance(value, str):
        parts = value.lower().replace("x", ",").split(",")
        value = int(parts[0]) if len(parts) == 1 else (int(parts[0]), int(parts[1]))
    if isinstance(value, int):
        return _int_option("frame_size", value, 1)
    h, w = value
    return _int_option("frame_size", h, 1), _int_option("frame_size", w, 1)


def verdict_progress(value: float | None) -> float | None:
    """A reader's 0-100 value as a verdict's progress in [0, 1]; None when unread or outside 0-100 (only the
    official reader leaves values unbounded).

    >>> verdict_progress(40.0), verdict_progress(250.0), verdict_progress(None)
    (0.4, None, None)
    """
    if value is None or not 0.0 <= value <= 100.0:
        return None
    return value / 100.0


class VLMCritic:
    """PRIMO R1 (or any Qwen2.5-VL-family checkpoint) as a progress critic.

    Args:
        model: hub id or local folder (a full checkpoint, or a LoRA adapter folder whose base is reachable).
        device: ``auto`` (CUDA if available, else CPU), or a torch device string.
        dtype: ``auto`` (bf16 on CUDA, fp32 on CPU), ``bf16``, ``fp16`` or ``fp32``.
        max_new_tokens: token budget of one answer (default 4096, the release's). PRIMO reasons at length; an
            answer cut off inside ``<think>`` is unreadable (``progress=None``), so lower budgets (the sim loop
            may use 256-1024) trade readability for speed.
        batch_size: queries per ``generate`` call (a larger ``assess`` batch is split).
        temperature: 0.1 by default (the release's); 0 decodes greedily; > 0 samples with ``top_p``.
        top_p: nucleus mass when sampling (default 0.001, the release's: only the top token survives).
        fps: the frame rate the clip is presented at (Qwen's video time positions; PRIMO/Qwen sample videos at 2).
        frame_size: resize every frame to this side (int) or (H, W); default keeps each frame's own size.
        max_pixels: the most pixels of an anchor image (default 401408, the release's); larger anchors are
            scaled down, aspect kept. Ignored with ``frame_size``.
        prompt_profile: ``primo-sft`` (default: system prompt; the release's SFT/eval layout) or ``primo-rl``
            (no system message, the RL prefix sentence), see :mod:`primo_loop.prompting`.
        prompt_file: the wording: a release checkout folder, its prompt module (parsed, never executed), or a
            text/JSON/YAML file; default ours. ``prompt_template`` is an older name for it.
        answer_parsing: ``lenient`` (default, the loop's reader) or ``official`` (the release's benchmark
            reader; a value outside 0-100 then gives ``progress=None``), see :mod:`primo_loop.answers`.
        attn_implementation: passed to ``from_pretrained`` (e.g. ``flash_attention_2``, ``sdpa``).
        revision: hub revision.
        trust_remote_code: passed to ``from_pretrained``.
        seed: torch seed for sampling (``temperature > 0``).

    Raises:
        CriticUnavailableError: the model cannot be found or loaded (the message says what to do).
        ConfigError: an option is out of range.
    """

    name = "primo"

    def __init__(self, model: str = DEFAULT_MODEL, *, device: str = "auto", dtype: str = "auto",
                 max_new_tokens: int = MAX_NEW_TOKENS, batch_size: int = 8, temperature: float = TEMPERATURE,
                 top_p: float = TOP_P, fps: float = 2.0, frame_size: int | tuple[int, int] | str | None = None,
                 max_pixels: int | None = MAX_PIXELS, prompt_profile: str = DEFAULT_PROFILE,
                 prompt_file: str | Path | PromptTemplate | None = None,
                 prompt_template: str | Path | PromptTemplate | None = None, answer_parsing: str = "lenient",
                 attn_implementation: str | None = None, revision: str | None = None,
                 trust_remote_code: bool = False, seed: int = 0):
        self._configure(max_new_tokens=max_new_tokens, batch_size=batch_size, temperature=temperature, top_p=top_p,
                        fps=fps, frame_size=frame_size, max_pixels=max_pixels, prompt_profile=prompt_profile,
                        prompt_file=prompt_file if prompt_file is not None else prompt_template,
                        answer_parsing=answer_parsing, seed=seed)
        self.model_name = str(model)
        processor, net = load_vlm(self.model_name, device=device, dtype=dtype,
                                  attn_implementation=attn_implementation, revision=revision,
                                  trust_remote_code=str(trust_remote_code).lower() in ("1", "true"))
        self._attach(processor, net)

    @classmethod
    def from_model(cls, processor: Any, model: Any, *, name: str = "in-memory", **options: Any) -> VLMCritic:
        """Wrap an already loaded ``(processor, model)`` (e.g. a random-init 7B for benchmarks).

        Args:
            processor: a Qwen2.5-VL-family processor.
            model: the matching ``AutoModelForImageTextToText`` model, on its device, in eval mode.
            name: what :attr:`model_name` reports.
            **options: the decoding and prompt options of :class:`VLMCritic`.
        """
        critic = cls.__new__(cls)
        critic._configure(**options)
        critic.model_name = name
        processor.tokenizer.padding_side = "left"
        critic._attach(processor, model)
        return critic

    def _configure(self, *, max_new_tokens: int = MAX_NEW_TOKENS, batch_size: int = 8,
                   temperature: float = TEMPERATURE, top_p: float = TOP_P, fps: float = 2.0,
                   frame_size: int | tuple[int, int] | str | None = None, max_pixels: int | None = MAX_PIXELS,
                   prompt_profile: str = DEFAULT_PROFILE, prompt_file: str | Path | PromptTemplate | None = None,
                   answer_parsing: str = "lenient", seed: int = 0) -> None:
        self.max_new_tokens = _int_option("max_new_tokens", max_new_tokens, 1)
        self.batch_size = _int_option("batch_size", batch_size, 1)
        self.temperature, self.top_p, self.fps = float(temperature), float(top_p), float(fps)
        if self.temperature < 0 or not 0 < self.top_p <= 1 or self.fps <= 0:
            raise ConfigError(f"Expected temperature >= 0, 0 < top_p <= 1 and fps > 0, actually: "
                              f"{temperature}, {top_p}, {fps}")
        self.frame_size = _frame_size_option(frame_size)
        self.max_pixels = None if max_pixels in (None, "", "none") else _int_option("max_pixels", max_pixels, 784)
        self.template = resolve_template(prompt_file, prompt_profile)
        self.answer_parsing = check_choice("answer_parsing", str(answer_parsing), ANSWER_MODES)
        self.seed = int(seed)
        self.min_new_tokens = 0  # benchmarks force a fixed answer length with this

    def _attach(self, processor: Any, net: Any) -> None:
        self.processor, self.model = processor, net
        tok = self.processor.tokenizer
        self._suppress = [i for i in (tok.convert_tokens_to_ids(t) for t in VISION_TOKENS)
                          if i is not None and i != tok.unk_token_id]
        eos = self.model.generation_config.eos_token_id
        eos = [eos] if isinstance(eos, int) else list(eos or [])
        self._eos = set(eos) | {tok.eos_token_id}
        self.stats = {"queries": 0, "unreadable": 0, "output_tokens": 0}
        self.last_verdicts: list[CriticVerdict] = []

    @property
    def device(self) -> Any:
        return self.model.device

    def messages(self, query: CriticQuery) -> list[dict[str, Any]]:
        """The chat for one query, with placeholder media parts (the frames go to the processor separately)."""
        return build_messages(query_question(query), instruction=query.instruction, template=self.template)

    def prepare(self, queries: Sequence[CriticQuery]) -> Any:
        """Processor inputs (left-padded tensors on the model's device) for a batch of queries."""
        from PIL import Image

        texts, images, videos, metas = [], [], [], []
        for q in queries:
            initial, clip, current = normalize_frames(q, self.frame_size, self.max_pixels)
            texts.append(self.processor.apply_chat_template(self.messages(q), tokenize=False,
                                                            add_generation_prompt=True))
            images.append([Image.fromarray(initial), Image.fromarray(current)])
            videos.append(clip)
            metas.append({"fps": self.fps, "total_num_frames": len(clip), "frames_indices": list(range(len(clip)))})
        inputs = self.processor(text=texts, images=images, videos=videos, video_metadata=metas, padding=True,
                                return_tensors="pt")
        return inputs.to(self.model.device)

    def generate(self, queries: Sequence[CriticQuery]) -> tuple[list[str], list[int]]:
        """Raw answers and output-token counts (up to and including the first end token) for one batch."""
        import torch

        inputs = self.prepare(queries)
        gen: dict[str, Any] = {"max_new_tokens": self.max_new_tokens, "suppress_tokens": self._suppress,
                               "pad_token_id": self.processor.tokenizer.pad_token_id}
        if self.min_new_tokens:
            gen["min_new_tokens"] = self.min_new_tokens
        if self.temperature > 0:
            torch.manual_seed(self.seed)
            gen.update(do_sample=True, temperature=self.temperature, top_p=self.top_p)
        else:
            gen.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        with torch.inference_mode():
            out = self.model.generate(**inputs, **gen)
        new = out[:, inputs["input_ids"].shape[1]:].tolist()
        seqs, counts = [], []
        for row in new:
            n = next((i + 1 for i, t in enumerate(row) if t in self._eos), len(row))
            seqs.append(row[:n])
            counts.append(n)
        texts = self.processor.batch_decode(seqs, skip_special_tokens=True)
        return texts, counts

    def assess(self, queries: Sequence[CriticQuery]) -> list[CriticVerdict]:
        """One verdict per query, same order; an unreadable answer is a verdict with ``progress=None``."""
        verdicts: list[CriticVerdict] = []
        for start in range(0, len(queries), self.batch_size):
            chunk = queries[start:start + self.batch_size]
            t0 = time.perf_counter()
            texts, counts = self.generate(chunk)
            dt = (time.perf_counter() - t0) / len(chunk)
            for text, n in zip(texts, counts):
                parsed = read_answer(text, self.answer_parsing)
                progress = verdict_progress(parsed.progress)
                verdicts.append(CriticVerdict(progress=progress, reasoning=parsed.reasoning, raw=text,
                                              latency_s=dt, output_tokens=n))
                self.stats["queries"] += 1
                self.stats["unreadable"] += progress is None
                self.stats["output_tokens"] += n
        self.last_verdicts = verdicts  # what the model said at the last call (rollout logs keep it)
        return verdicts
