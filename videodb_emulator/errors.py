"""API errors rendered in the body shape the VideoDB SDK reads."""

from __future__ import annotations

from typing import Any

from aiohttp import web


class ApiError(Exception):
    """Raised by handlers; the middleware turns it into ``{"success": false, ...}``.

    The SDK only reads ``message`` from error bodies and maps 401 to
    ``AuthenticationError`` and every other status to ``InvalidRequestError``.
    """

    def __init__(self, status: int, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code or _DEFAULT_CODES.get(status, "error")


_DEFAULT_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    500: "internal_error",
    502: "bad_gateway",
    503: "service_unavailable",
    504: "gateway_timeout",
}


def error_body(status: int, message: str, code: str | None = None) -> dict[str, Any]:
    return {
        "success": False,
        "data": None,
        "message": message,
        "error_code": code or _DEFAULT_CODES.get(status, "error"),
    }


def error_response(status: int, message: str, code: str | None = None) -> web.Response:
    return web.json_response(error_body(status, message, code), status=status)


def ok(data: Any, message: str = "ok", status: int = 200) -> web.Response:
    return web.json_response({"success": True, "data": data, "message": message}, status=status)


def bad_request(message: str) -> ApiError:
    return ApiError(400, message)
