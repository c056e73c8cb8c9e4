"""Turn settings into SLM objects — the model store, the base model, the backend — and into the
distillation loop's configuration.

Kept free of the orchestrator (and so of the agents SDK) so that model commands start fast;
:mod:`serving.orchestration` assembles the rest."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from distill.config import (
    DatasetOptions,
    DistillConfig,
    DistillPaths,
    GateConfig,
    ProposalConfig,
    QueueConfig,
    SLMAccess,
    TrainConfig,
    TrainLimits,
)
from distill.prerouter.versions import RouterVersions
from distill.roi import RoiConfig
from distill.steward import StewardConfig
from orchestrator.audits import AuditPolicy, LifecyclePolicy
from orchestrator.prerouter import Embedder, MiniLMEmbedder, PreRouter
from orchestrator.prerouter_static import STATIC_DIR, TABLE_FILE, StaticEmbedder
from serving.settings import Settings
from specialists.backend import SLMBackend
from specialists.catalog import Catalog
from specialists.errors import ModelError
from specialists.local import LocalBackend
from specialists.model_store import KNOWN_MODELS, ModelStore
from specialists.pull import pull_model
from specialists.vllm_client import VLLMBackend

Log = Callable[[str], None]


logger = logging.getLogger(__name__)


def model_store(settings: Settings) -> ModelStore:
    return ModelStore(settings.models_dir)


def resolve_base_model(settings: Settings, *, log: Log = lambda _m: None) -> Path:
    """The base model's directory, pulled first when it is a known alias and ``auto_pull`` is on."""
    store = model_store(settings)
    ref = settings.slm.base_model
    try:
        return store.resolve(ref)
    except ModelError:
        if not (settings.slm.auto_pull and ref in KNOWN_MODELS) or store.path_for(ref).exists():
            raise
    log(
        f"base model {ref} is not pulled yet; pulling it once "
        "(UNDERSTUDY_SLM_AUTO_PULL=false stops this)"
    )
    return pull_model(ref, store, log=log).path


def build_backend(
    settings: Settings, *, backend: str | None = None, log: Log = lambda _m: None
) -> SLMBackend:
    """The SLM backend the settings (or an explicit ``backend`` name) select."""
    slm = settings.slm
    if (backend or slm.backend) == "vllm":
        return VLLMBackend(
            slm.base_url,
            base_model_name=slm.base_model,
            api_key=slm.api_key.get_secret_value() if slm.api_key else None,
            timeout_s=slm.timeout_s,
            connect_timeout_s=slm.connect_timeout_s,
            max_retries=slm.max_retries,
        )
    return LocalBackend(
        resolve_base_model(settings, log=log),
        base_ref=slm.base_model,
        device=slm.device,
        max_batch_size=slm.max_batch_size,
        drain_s=slm.timeout_s,
    )


def build_prerouter(settings: Settings, catalog: Catalog | None = None) -> PreRouter:
    """The pre-router the settings describe: the active learned version (unless
    ``UNDERSTUDY_ROUTER_LEARNED`` is off; two-stage when it was trained so), else the prototype
    router (embedding model, threshold, catalog)."""
    catalog = catalog or settings.catalog()
    versions = RouterVersions(settings.prerouter_dir)
    active = versions.active() if settings.router.learned else None
    if active is not None:
        embedder = router_embedder(settings, static=active.embedder.startswith("static:"))
        fast = None
        if active.cut is not None and static_table_ready(settings):
            fast = router_embedder(settings, static=True)
        elif active.cut is not None:
            logger.warning(
                "pre-router v%d is two-stage but the static embedding is missing here: MiniLM "
                "decides every prompt (slower, as precise). Fix: understudy router "
                "distill-embedding",
                active.version,
            )
        return versions.router(active, catalog, embedder, fast_embedder=fast)
    embedder = MiniLMEmbedder(settings.router.embedding_model)
    return PreRouter(catalog, embedder, threshold=settings.router.threshold)


def static_table_ready(settings: Settings) -> bool:
    """Whether the static embedding has been distilled (``understudy router
    distill-embedding``, or the first static or two-stage ``router train``)."""
    return (settings.prerouter_dir / STATIC_DIR / TABLE_FILE).is_file()


def router_embedder(settings: Settings, *, static: bool) -> Embedder:
    """The static embedding table under ``prerouter_dir`` (the fast path), or MiniLM."""
    if static:
        return StaticEmbedder(settings.prerouter_dir / STATIC_DIR)
    return MiniLMEmbedder(settings.router.embedding_model)


def distill_config(settings: Settings) -> DistillConfig:
    """The ``UNDERSTUDY_DISTILL_*`` settings (and the SLM and job-queue ones distillation obeys)
    as the distillation loop's configuration; the CLI and the worker build the same one, so
    both find each other's datasets and adapters for the same inputs.

    Raises:
        ConfigurationError: The settings combine into an invalid option (say, validation and
            test fractions that leave nothing to train on).
    """
    distill = settings.distill
    return DistillConfig(
        catalog=settings.catalog(),
        base_model=settings.slm.base_model,
        paths=DistillPaths(
            datasets=settings.datasets_dir,
            adapters=settings.adapters_dir,
            models=settings.models_dir,
        ),
        dataset=DatasetOptions(
            val_fraction=distill.val_fraction,
            test_fraction=distill.test_fraction,
            near_duplicate_threshold=distill.near_duplicate_threshold,
            same_split_threshold=distill.same_split_threshold,
            max_example_chars=distill.max_example_chars,
            phone_region=distill.phone_region,
        ),
        max_transcripts=distill.max_transcripts,
        train=TrainConfig(
            rank=distill.rank,
            alpha=distill.alpha,
            dropout=distill.dropout,
            target_modules=tuple(distill.target_modules),
            learning_rate=distill.learning_rate,
            epochs=distill.epochs,
            batch_size=distill.batch_size,
            max_seq_tokens=distill.max_seq_tokens,
            seed=distill.seed,
            checkpoint_every=distill.checkpoint_every,
            keep_checkpoints=distill.keep_checkpoints,
            device=distill.device,
            threads=distill.threads,
        ),
        limits=TrainLimits(max_rank=settings.slm.max_lora_rank, min_examples=distill.min_examples),
        gate=GateConfig(
            target_precision=distill.target_precision,
            min_accepted=distill.min_accepted,
            precision_tolerance=distill.precision_tolerance,
            match_threshold=distill.match_threshold,
        ),
        slm_cost_per_token=settings.slm.cost_per_million / 1e6,
        proposals=ProposalConfig(
            cluster_threshold=distill.cluster_threshold,
            coverage_threshold=distill.coverage_threshold,
            min_runs=distill.min_cluster_runs,
            max_runs=distill.propose_max_runs,
            auto_distill_runs=distill.auto_distill_runs,
        ),
        queue=QueueConfig(
            lease_s=settings.batch.lease_s,
            max_attempts=settings.batch.max_attempts,
            poll_s=settings.batch.poll_s,
        ),
        auto_promote=distill.auto_promote,
        canary_share=settings.canary.share,
    )


def slm_access(settings: Settings) -> SLMAccess:
    """How a distillation job reaches the base model and a backend: as these settings say."""
    return SLMAccess(
        base_model_dir=lambda log: resolve_base_model(settings, log=log),
        open_backend=lambda log: build_backend(settings, log=log),
    )


def steward_config(settings: Settings) -> StewardConfig:
    """What the steward holds versions to: the gate's bar (its target less its tolerance, what
    a version passed the gate with) at the audit settings' decision confidence."""
    audit, gate = settings.audit, distill_config(settings).gate
    return StewardConfig(
        lifecycle=LifecyclePolicy(
            target_precision=gate.target_precision - gate.precision_tolerance,
            confidence=audit.decision_confidence,
            min_audits=audit.decision_min_count,
            max_canary_audits=audit.max_canary_count,
            max_negative_feedback_rate=audit.max_negative_feedback_rate,
            max_escalation_rate=audit.max_escalation_rate,
            min_runs=audit.min_runs,
        ),
        audits=audit_policy(settings),
        gate=gate,
        refit_min_change=audit.refit_min_change,
        interval_s=audit.steward_s,
        refit_interval_s=audit.refit_s,
    )


def audit_policy(settings: Settings) -> AuditPolicy:
    """The audit settings as the plain policy the orchestrator and the CLI use."""
    audit = settings.audit
    return AuditPolicy(
        rate=audit.rate,
        floor=audit.floor,
        min_audits=audit.min_count,
        target_width=audit.target_width,
        window=audit.window,
        window_days=audit.window_days,
    )


def roi_config(settings: Settings) -> RoiConfig:
    """The ROI settings as the plain configuration the ledger takes."""
    roi = settings.roi
    return RoiConfig(
        cpu_hour_usd=roi.cpu_hour_usd, gpu_hour_usd=roi.gpu_hour_usd, rate_days=roi.rate_days
    )
