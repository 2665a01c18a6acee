"""The compact critic's network module (``critics/compact_model.py``) beside its backend (``critics/compact.py``):
the backend re-exports the model's names, and neither module imports torch until a model or tensor is built."""
from __future__ import annotations

import subprocess
import sys

import pytest

from primo_loop.critics import compact, compact_model
from primo_loop.errors import MissingDependencyError


def test_the_backend_module_serves_the_model_names_its_callers_import():
    # training/compact.py, training/compact_batches.py and tests/conftest.py import these from critics.compact
    for name in ("CompactConfig", "build_model", "sequence_layout", "text_batch", "hash_tokens", "inference_encoder",
                 "ARCH_VERSION", "ROLE_INITIAL", "ROLE_CLIP", "ROLE_CURRENT"):
        assert getattr(compact, name) is getattr(compact_model, name), name
    assert set(compact.__all__) >= {"CompactCritic", "save_checkpoint", "load_checkpoint", "resolve_checkpoint",
                                    "checkpoint_paths", "DEFAULT_CHECKPOINT", "SHIPPED"}
    assert all(hasattr(compact, n) for n in compact.__all__)


def test_neither_module_imports_torch_on_import():
    code = "import sys, primo_loop.critics.compact_model, primo_loop.critics.compact; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_without_torch_building_a_model_names_the_package(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)  # what an environment without torch gives on `import torch`
    with pytest.raises(MissingDependencyError, match="'torch'.*pip install torch"):
        compact_model.build_model(compact_model.CompactConfig())
