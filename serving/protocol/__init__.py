"""The OpenAI protocol, in one place: request and response shapes, model names, the request
check (limits included) and error shapes, for the chat API and the batch runner alike.

Nothing here knows HTTP servers: ``serving.api`` turns these into FastAPI routes and responses,
``serving.batch`` into output and error lines.
"""

from serving.protocol.admission import ChatCall, admit_chat_request
from serving.protocol.errors import (
    ProtocolError,
    database_unavailable,
    degraded,
    describe_failure,
    describe_validation_errors,
    error_body,
    invalid_body,
    refusal,
    shutting_down,
    unanswered,
)
from serving.protocol.models import (
    MODE_MODELS,
    ServedModels,
    model_object,
    resolve_model,
    served_models,
)
from serving.protocol.requests import (
    ChatCompletionRequest,
    ChatMessageIn,
    OnDegraded,
    StreamOptions,
    TextPart,
    parse_chat_request,
)
from serving.protocol.responses import (
    completion_body,
    completion_chunk,
    error_chunk,
    logprobs_block,
    tool_calls_block,
    understudy_block,
    usage_block,
    usage_chunk,
)

__all__ = [
    "MODE_MODELS",
    "ChatCall",
    "ChatCompletionRequest",
    "ChatMessageIn",
    "OnDegraded",
    "ProtocolError",
    "ServedModels",
    "StreamOptions",
    "TextPart",
    "admit_chat_request",
    "completion_body",
    "completion_chunk",
    "database_unavailable",
    "degraded",
    "describe_failure",
    "describe_validation_errors",
    "error_body",
    "error_chunk",
    "invalid_body",
    "logprobs_block",
    "model_object",
    "parse_chat_request",
    "refusal",
    "resolve_model",
    "served_models",
    "shutting_down",
    "tool_calls_block",
    "unanswered",
    "understudy_block",
    "usage_block",
    "usage_chunk",
]
