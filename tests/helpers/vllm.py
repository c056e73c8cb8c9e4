"""vLLM's model list, runtime LoRA and chat endpoints, answered as vLLM answers them, for a real
HTTP server on 127.0.0.1 (:func:`tests.helpers.http_server.serve`); real vLLM runs in
tests/integration."""

from __future__ import annotations

from typing import Any

from starlette.responses import JSONResponse, Response

from tests.helpers.http_server import chat_completion


class ScriptedVLLM:
    """A vLLM server's state as its endpoints expose it.

    A name it serves is refused unless ``load_inplace``; names in ``refuse`` are refused
    outright; a chat request naming neither the base nor a loaded adapter is a 404.
    :meth:`restart` forgets every runtime-loaded adapter, as a restarted vLLM does. The next
    ``failing_unloads`` unloads are answered 503 (a server failing for a moment).
    """

    def __init__(self, base: str = "tiny", refuse: frozenset[str] = frozenset()) -> None:
        self.base = base
        self.refuse = refuse
        self.loaded: dict[str, str] = {}
        self.failing_unloads = 0

    def restart(self) -> None:
        self.loaded = {}

    async def __call__(self, path: str, body: dict[str, Any]) -> Response:
        name = body.get("lora_name", "")
        if path.endswith("/models"):
            names = [self.base, *self.loaded]
            return JSONResponse({"object": "list", "data": [{"id": n} for n in names]})
        if path.endswith("/chat/completions"):
            if body["model"] != self.base and body["model"] not in self.loaded:
                message = f"The model `{body['model']}` does not exist."
                return JSONResponse({"error": {"message": message}}, status_code=404)
            return chat_completion("ok", [-0.1], model=body["model"])
        if path.endswith("/load_lora_adapter"):
            if name in self.refuse:
                message = "LoRA rank 64 is greater than max_lora_rank 16"
                return JSONResponse({"error": {"message": message}}, status_code=400)
            if name in self.loaded and not body.get("load_inplace"):
                message = f"The lora adapter '{name}' has already been loaded."
                return JSONResponse({"error": {"message": message}}, status_code=400)
            self.loaded[name] = body["lora_path"]
            return JSONResponse({})
        if path.endswith("/unload_lora_adapter") and self.failing_unloads:
            self.failing_unloads -= 1
            return JSONResponse({"error": {"message": "engine busy"}}, status_code=503)
        if path.endswith("/unload_lora_adapter") and self.loaded.pop(name, None) is not None:
            return JSONResponse({})
        return JSONResponse({"error": {"message": f"{name} not found"}}, status_code=404)
