"""The base install (no `local` extra: no torch, transformers, peft, dataset tools) runs the
processes that only talk to servers: the CLI, the API, and batch workers using vLLM."""

from __future__ import annotations

import subprocess
import sys

HEAVY = ("torch", "transformers", "peft", "sentence_transformers", "datasketch", "phonenumbers")

PROBE = f"""
import importlib.abc, sys

class Absent(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {HEAVY!r}:
            raise ImportError(f"No module named {{name!r}} (not installed)")

sys.meta_path.insert(0, Absent())
import serving.cli, serving.api.main, serving.worker

from serving.worker import JOB_KINDS
print(sorted(JOB_KINDS))
"""


def test_the_cli_the_api_and_the_worker_import_without_the_local_extra() -> None:
    probe = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=120
    )
    assert probe.returncode == 0, probe.stderr[-3000:]
    assert probe.stdout.strip() == "['audit', 'batch', 'distill', 'prerouter']"


def test_no_extra_installs_vllm_into_the_products_environment() -> None:
    """vLLM pins its own torch and transformers; next to the product's it breaks their imports,
    so it only ever lives in a venv of its own (`understudy slm install`)."""
    import tomllib
    from pathlib import Path

    pyproject = tomllib.loads((Path(__file__).parents[2] / "pyproject.toml").read_text())
    requirements = [
        requirement
        for extra in pyproject["project"]["optional-dependencies"].values()
        for requirement in extra
    ] + pyproject["project"]["dependencies"]
    assert [r for r in requirements if r.lower().startswith("vllm")] == []
