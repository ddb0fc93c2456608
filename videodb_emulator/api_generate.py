"""REST handlers for `generate_text`, and the upload path the SDK takes for large prompts."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import BodyPartReader, web

from .api_capture import collection_id, core_of
from .auth import api
from .core import Emulator
from .errors import ApiError, bad_request, ok
from .generate import FAULT_SHAPES, generate_text
from .routing import Routes
from .uploads import MAX_UPLOAD_BYTES, PATH_PREFIX, UPLOAD_TTL
from .validation import json_body, opt_dict, opt_number, opt_str

routes = Routes()
# The model tiers the SDK documents; self-hosted models need a sandbox, which is not emulated.
MODELS = ("basic", "pro", "ultra")
RESPONSE_TYPES = ("text", "json")
MAX_TEMPERATURE = 2.0
_CHUNK = 64 << 10


def _too_large(size: int) -> ApiError:
    return ApiError(
        413, f"prompt is {size:,} bytes; the emulator accepts at most {MAX_UPLOAD_BYTES:,}"
    )


def _prompt(core: Emulator, body: dict[str, Any]) -> str:
    inline, url = body.get("prompt"), body.get("prompt_url")
    if inline is not None and url is not None:
        raise bad_request("give either 'prompt' or 'prompt_url', not both")
    if url is not None:
        return _uploaded_prompt(core, url)
    if inline is None:
        raise bad_request("'prompt' is required (or 'prompt_url' from GET .../upload_url)")
    if not isinstance(inline, str) or not inline.strip():
        kind = "an empty string" if isinstance(inline, str) else type(inline).__name__
        raise bad_request(f"'prompt' must be a non-empty string, got {kind}")
    size = len(inline.encode("utf-8", "surrogatepass"))
    if size > MAX_UPLOAD_BYTES:
        raise _too_large(size)
    return inline


def _uploaded_prompt(core: Emulator, url: Any) -> str:
    if not isinstance(url, str):
        raise bad_request(f"'prompt_url' must be a string, got {type(url).__name__}")
    token = core.uploads.token_of(url)
    if token is None:
        raise bad_request(
            "'prompt_url' must be an upload URL minted by this emulator "
            "(GET collection/default/upload_url); it fetches nothing else"
        )
    upload = core.uploads.get(token)
    if upload is None:
        raise ApiError(404, "'prompt_url' is unknown or has expired")
    if upload.content is None:
        raise bad_request("nothing was uploaded to 'prompt_url'")
    try:
        text = upload.content.decode("utf-8")
    except UnicodeDecodeError:
        raise bad_request("the uploaded prompt is not UTF-8 text") from None
    if not text.strip():
        raise bad_request("the uploaded prompt is empty")
    return text


def _model(body: dict[str, Any]) -> str:
    sandbox = opt_str(body, "sandbox_id")
    if sandbox is not None:
        raise ApiError(404, f"sandbox '{sandbox}' not found (the emulator has no sandboxes)")
    model = body.get("model_name", "basic")
    if model is None:
        return "basic"
    if not isinstance(model, str) or model not in MODELS:
        raise bad_request(
            f"'model_name' must be one of {', '.join(MODELS)}, got {model!r} "
            "(self-hosted models need a sandbox, which the emulator does not have)"
        )
    return model


def _options(body: dict[str, Any]) -> str:
    response_type = body.get("response_type", "text")
    if response_type is None:
        response_type = "text"
    if response_type not in RESPONSE_TYPES:
        raise bad_request(f"'response_type' must be 'text' or 'json', got {response_type!r}")
    opt_number(body, "max_tokens", minimum=1, integer=True)
    temperature = opt_number(body, "temperature", minimum=0)
    if temperature is not None and temperature > MAX_TEMPERATURE:
        raise bad_request(f"'temperature' must be between 0 and {MAX_TEMPERATURE}")
    opt_dict(body, "model_config")
    if opt_str(body, "callback_url") is not None:
        raise bad_request(
            "'callback_url' is not supported by the emulator: generate_text answers at once"
        )
    return response_type


@routes.add("POST", "collection/{coll}/generate/text")
@api()
async def generate(request: web.Request) -> web.Response:
    collection_id(request)
    body = await json_body(request, allow_empty=False)
    core = core_of(request)
    prompt = _prompt(core, body)
    model_name = _model(body)
    response_type = _options(body)
    fault = core.generate_faults.take()
    if fault == "error":
        status = core.generate_faults.status
        raise ApiError(status, f"injected generation fault: HTTP {status}")
    if fault == "slow":
        await asyncio.sleep(core.generate_faults.delay)
    shape = fault if fault in FAULT_SHAPES else None
    # A megabyte of prompt takes a while to read; keep the event loop serving meetings.
    output = await asyncio.to_thread(generate_text, prompt, response_type, shape)
    return ok(
        {
            "output": output,
            "response_type": response_type,
            "model_name": model_name,
            "emulated": True,
        }
    )


@routes.add("GET", "collection/{coll}/upload_url")
@api()
async def upload_url(request: web.Request) -> web.Response:
    collection_id(request)
    name = request.query.get("name") or "upload"
    if len(name) > 255:
        raise bad_request("query parameter 'name' must be at most 255 characters")
    core = core_of(request)
    upload = core.uploads.mint(name)
    return ok(
        {
            "upload_url": f"{core.base_url}{PATH_PREFIX}{upload.token}",
            "expires_in": int(UPLOAD_TTL),
            "max_bytes": MAX_UPLOAD_BYTES,
        }
    )


async def _read_capped(read_chunk: Any) -> bytes:
    data = bytearray()
    while chunk := await read_chunk(_CHUNK):
        data += chunk
        if len(data) > MAX_UPLOAD_BYTES:
            raise _too_large(len(data))
    return bytes(data)


async def _upload_content(request: web.Request) -> bytes:
    if not request.content_type.startswith("multipart/"):
        return await _read_capped(request.content.read)
    try:
        reader = await request.multipart()
        part = await reader.next()
    except (ValueError, AssertionError) as exc:
        raise bad_request(f"malformed multipart body: {exc}") from None
    if part is None or not isinstance(part, BodyPartReader):
        raise bad_request("the multipart body has no file part")
    return await _read_capped(part.read_chunk)


async def receive_upload(request: web.Request) -> web.Response:
    """``POST /_upload/{token}``: no API key, the URL is the credential (as with presigned URLs)."""
    upload = core_of(request).uploads.get(request.match_info["token"])
    if upload is None:
        raise ApiError(404, "unknown or expired upload URL")
    if upload.content is not None:
        raise ApiError(409, "this upload URL was already used")
    upload.content = await _upload_content(request)
    return ok({"name": upload.name, "size": len(upload.content)})


def install(app: web.Application) -> None:
    routes.install(app)
    app.router.add_post(PATH_PREFIX + "{token}", receive_upload)
