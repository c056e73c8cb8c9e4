"""Adapters into the registry and out to the servers: checks, registration, promotion, rollback.

Everything that can be refused is checked before the registry changes: the adapter's files and
hash, its LoRA rank against the SLM server's maximum, its base model against the one being
served (by name, and by the shapes of its matrices against the base's layers), the evaluation
gate, and — when a vLLM server is configured — that the server itself accepts the adapter (it is
loaded under the version's own served name, ``math@v3-1f2e3d4c``, where it stays). Only then is the
version served: as a canary on a share of its specialist's traffic (the default), or as the
active version at once (share 0, or an operator's ``--now``). Serving processes pick the
change up from the registry (:mod:`distill.reconcile`); a rollback switches them back to the
previous version's name.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from distill.catalog import load_catalog, version_tag
from distill.config import DistillConfig, Log
from distill.reconcile import place_all
from distill.registry import (
    OutOfRange,
    PromotionRefused,
    RegistryError,
    RegistryStore,
    SpecialistVersion,
    promotion_refusal,
)
from specialists.adapters import (
    adapter_name,
    adapter_sha256,
    check_adapter_fits,
    read_adapter_config,
)
from specialists.catalog import Catalog
from specialists.errors import ConfigurationError, ModelError, SpecialistError
from specialists.model_store import ModelStore
from specialists.vllm_client import VLLMBackend

TRAINING_FILE = "training.json"
"""Written by ``distill train`` next to the adapter: its base model and dataset."""


@dataclass(frozen=True, slots=True)
class ServedBase:
    """The base model the SLM servers run, and the limits they put on adapters."""

    ref: str
    """The name users know it by (``UNDERSTUDY_SLM_BASE_MODEL``)."""
    model_dir: Path | None
    """Its local directory, when there is one: adapters are checked against its layers."""
    max_rank: int
    """vLLM's ``--max-lora-rank`` (``UNDERSTUDY_SLM_MAX_LORA_RANK``)."""


def served_base(config: DistillConfig) -> ServedBase:
    """The base the configuration serves; its directory when it is in the model store."""
    try:
        model_dir: Path | None = ModelStore(config.paths.models).resolve(config.base_model)
    except ModelError:
        model_dir = None  # served from elsewhere (a vLLM with a Hub id): checked by name only
    return ServedBase(config.base_model, model_dir, config.limits.max_rank)


@dataclass(frozen=True, slots=True)
class AdapterFacts:
    """What the registry records about an adapter directory."""

    path: Path
    sha256: str
    rank: int
    base_model: str
    dataset_path: str | None


def inspect_adapter(path: Path, base: ServedBase) -> AdapterFacts:
    """Check that the adapter in ``path`` can be served on ``base``; what it is.

    Raises:
        ModelError: Not an adapter directory, or trained for another base (by the name its
            training recorded, or because its matrices do not fit the base's layers).
        ConfigurationError: Its rank is above the server's maximum.
    """
    path = path.expanduser().resolve()
    config = read_adapter_config(path)
    rank = int(config["r"])
    if rank > base.max_rank:
        raise ConfigurationError(
            f"adapter {path} has LoRA rank {rank}, above the SLM server's maximum of "
            f"{base.max_rank}: vLLM would refuse it. Retrain with --rank {base.max_rank} or "
            "less, or raise the server's maximum",
            setting="UNDERSTUDY_SLM_MAX_LORA_RANK",
        )
    training = _read_training(path)
    trained_on = training.get("base_model")
    if trained_on is not None and trained_on != base.ref:
        raise ModelError(
            f"adapter {path} was trained on base {trained_on!r}, but the SLM server runs "
            f"{base.ref!r}: an adapter only works on the base it was trained on"
        )
    if base.model_dir is not None:
        check_adapter_fits(_skeleton(base.model_dir), path, name=path.name, base_ref=base.ref)
    return AdapterFacts(
        path=path,
        sha256=adapter_sha256(path),
        rank=rank,
        base_model=base.ref,
        dataset_path=training.get("dataset"),
    )


async def register_candidate(
    registry: RegistryStore,
    known: Catalog,
    name: str,
    adapter: Path,
    base: ServedBase,
    *,
    dataset: Path | None = None,
) -> SpecialistVersion:
    """The registry version for ``adapter``: the existing one if this adapter (same hash) is
    registered for ``name`` already, else a new candidate.

    Args:
        known: Every specialist a version may belong to (built-in, settings and registry ones).

    Raises:
        UnknownSpecialistError: ``name`` is not a known specialist.
        ModelError, ConfigurationError: See :func:`inspect_adapter`.
    """
    known.get(name)
    facts = inspect_adapter(adapter, base)
    for version in await registry.list_versions(name):
        if version.adapter_sha256 == facts.sha256:
            return version
    return await registry.add_version(
        name,
        adapter_path=str(facts.path),
        adapter_sha256=facts.sha256,
        base_model=facts.base_model,
        lora_rank=facts.rank,
        dataset_path=str(dataset.resolve()) if dataset else facts.dataset_path,
    )


def verify_version(version: SpecialistVersion, base: ServedBase) -> None:
    """Check that ``version`` can still be served: same files, same base, rank within limits.

    Raises:
        ModelError: The adapter's files changed or vanished since it was registered, or it
            belongs to another base.
        ConfigurationError: Its rank is above the server's maximum.
    """
    if version.base_model != base.ref:
        raise ModelError(
            f"{version.label} was trained on base {version.base_model!r}, but the SLM server "
            f"runs {base.ref!r}: an adapter only works on the base it was trained on"
        )
    facts = inspect_adapter(Path(version.adapter_path), base)
    if facts.sha256 != version.adapter_sha256:
        raise ModelError(
            f"the adapter files of {version.label} at {version.adapter_path} changed since it "
            "was registered (SHA-256 differs); evaluate the new adapter as a new version"
        )


async def choose_version(
    registry: RegistryStore, name: str, number: int | None
) -> SpecialistVersion:
    """Version ``number`` of ``name``, or its newest version that is not active."""
    if number is not None:
        return await registry.find_version(name, number)
    waiting = [v for v in await registry.list_versions(name) if v.status != "active"]
    if not waiting:
        raise RegistryError(
            f"{name!r} has no version waiting for promotion; train and evaluate one first"
        )
    return waiting[-1]


class Promoter:
    """Promotes and rolls back specialist versions, telling a running vLLM at once.

    Args:
        registry: The registry.
        base_catalog: The catalog without the registry (built-ins and settings overrides).
        served: The served base and its limits.
        vllm: A running vLLM server to load adapters into now (serving processes follow the
            registry by themselves); ``None`` with the local backend.
        log: Progress messages.
    """

    def __init__(
        self,
        registry: RegistryStore,
        *,
        base_catalog: Catalog,
        served: ServedBase,
        vllm: VLLMBackend | None = None,
        log: Log = lambda _m: None,
    ) -> None:
        self.registry = registry
        self.base_catalog = base_catalog
        self.served = served
        self.vllm = vllm
        self.log = log

    async def promote(
        self,
        version: SpecialistVersion,
        *,
        share: float,
        actor: str,
        override: bool = False,
    ) -> SpecialistVersion:
        """Serve ``version``, after every check: as a canary on ``share`` of its specialist's
        traffic, or, with ``share`` 0, as the active version at once.

        Args:
            share: The canary's share (``UNDERSTUDY_CANARY_SHARE`` or ``--canary``); 0 skips
                the canary.
            actor: Who asked (``cli``, ``distill``), for the event.
            override: An operator skipped the canary on purpose (``--now``); the event says so.

        Raises:
            PromotionRefused: The gate did not pass, vLLM refused the adapter, or another
                version is in canary.
            OutOfRange: ``share`` is not in [0, 1).
            ModelError, ConfigurationError: See :func:`verify_version`.
        """
        if not 0.0 <= share < 1.0:
            raise OutOfRange("the canary share", share, "in [0, 1) (0: straight to active)")
        problem = promotion_refusal(version)
        if problem:
            raise PromotionRefused(problem)
        verify_version(version, self.served)
        if self.vllm is not None:
            await self._load_on_vllm(version)
        if share > 0.0:
            served = await self.registry.start_canary(version.id, share, actor=actor)
            self.log(
                f"{served.label} serves {share:.1%} of {served.specialist}'s traffic as a canary; "
                "serving processes switch within a poll"
            )
        else:
            reason = (
                "operator override: promoted straight to active, without a canary"
                if override
                else "promoted straight to active (canary share 0)"
            )
            served = await self.registry.promote(
                version.id, actor=actor, reason=reason, figures={"override": override}
            )
            self.log(f"{served.label} is active; serving processes switch within a poll")
        await self._follow()
        return served

    async def rollback(
        self, name: str, *, actor: str = "operator"
    ) -> tuple[SpecialistVersion, SpecialistVersion | None]:
        """Reject ``name``'s canary, or else retire its active version and reactivate the one
        it replaced, if any (:meth:`RegistryStore.rollback`).

        Raises:
            WrongStatus: ``name`` has neither a canary nor an active version.
        """
        retired, restored = await self.registry.rollback(name, actor=actor)
        self.log(
            f"{retired.label} retired; "
            + (f"{restored.label} is active again" if restored else f"{name} has no active version")
        )
        await self._follow()
        return retired, restored

    async def _load_on_vllm(self, version: SpecialistVersion) -> None:
        """Load the adapter under the version's own served name before the registry names it:
        a refusal (rank, shapes, files) stops the promotion, and an acceptance leaves it
        ready for the first request after the switch."""
        assert self.vllm is not None
        name = adapter_name(version.specialist, version_tag(version))
        try:
            await self.vllm.load_adapter(name, Path(version.adapter_path))
        except SpecialistError as exc:
            raise PromotionRefused(f"the vLLM server refused {version.label}: {exc}") from exc

    async def _follow(self) -> None:
        """Bring the vLLM server to the registry's new catalog (a rollback's restored version,
        say, after a restart). The registry has changed already: a failure here is reported,
        and every serving process retries it."""
        if self.vllm is None:
            return
        after = await load_catalog(self.registry, self.base_catalog)
        try:
            await place_all(self.vllm, after.all)
        except SpecialistError as exc:
            self.log(f"vLLM did not take the change yet ({exc}); serving processes will retry")


def _read_training(path: Path) -> dict[str, Any]:
    file = path / TRAINING_FILE
    if not file.is_file():
        return {}
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelError(f"{file}: unreadable ({exc})") from exc
    return data if isinstance(data, dict) else {}


def _skeleton(model_dir: Path) -> Any:
    """The base model's module tree without its weights (on torch's meta device): enough to
    check an adapter's shapes in about a second, whatever the model's size."""
    try:
        import torch
        from transformers import AutoConfig, AutoModelForCausalLM
    except ImportError as exc:
        raise ModelError(
            "checking an adapter against its base needs the local extra: "
            "pip install 'understudy[local]'"
        ) from exc
    try:
        config = AutoConfig.from_pretrained(model_dir)
    except (OSError, ValueError) as exc:
        raise ModelError(f"cannot read the base model's config in {model_dir}: {exc}") from exc
    with torch.device("meta"):
        return AutoModelForCausalLM.from_config(config)
