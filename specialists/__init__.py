"""The understudies: catalog, SLM backends, model store and pulling.

Public names are re-exported here; implementation modules stay importable but are not the API.
"""

from specialists.backend import (
    ChatMessage,
    Confidence,
    Generation,
    SLMBackend,
    TokenLogprob,
    Usage,
)
from specialists.catalog import DEFAULT_SPECIALISTS, Catalog, GenerationParams, Specialist
from specialists.errors import (
    ConfigurationError,
    ModelDirectoryError,
    ModelError,
    PromptTooLong,
    SpecialistError,
    SpecialistUnavailable,
    UnderstudyError,
    UnknownSpecialistError,
)
from specialists.model_store import KNOWN_MODELS, ModelStore, validate_model_dir
from specialists.sampling import Sampling
from specialists.validators import Validation

__all__ = [
    "DEFAULT_SPECIALISTS",
    "KNOWN_MODELS",
    "Catalog",
    "ChatMessage",
    "Confidence",
    "ConfigurationError",
    "Generation",
    "GenerationParams",
    "ModelDirectoryError",
    "ModelError",
    "ModelStore",
    "PromptTooLong",
    "SLMBackend",
    "Sampling",
    "Specialist",
    "SpecialistError",
    "SpecialistUnavailable",
    "TokenLogprob",
    "UnderstudyError",
    "UnknownSpecialistError",
    "Usage",
    "Validation",
    "validate_model_dir",
]
