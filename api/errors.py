"""One shape for every 400 in the API: a flat object whose keys are paths into the request
body and whose values are lists of messages::

    {"config.filters[0].operator": ["unknown operator 'like'; use one of exact, …"],
     "channels.alert.in_app": ["alert notifications in the app are critical …"]}

A plain field keeps DRF's usual key (``"name": ["This field is required."]``); errors that
belong to no field are under ``non_field_errors``. Views get it by mixing in
:class:`FlatErrorsMixin`; the schema documents it with :data:`FIELD_ERRORS`.

:class:`JSONParser` (the API's default) makes the bodies DRF's own parser lets through as a
500 — JSON nested deeper than Python's stack, strings holding a lone surrogate — a 400.
:func:`exception_handler` (DRF's ``EXCEPTION_HANDLER``) answers a body over Django's
``DATA_UPLOAD_MAX_MEMORY_SIZE`` with :class:`BodyTooLarge`, a JSON 413 like ingestion's own
limit, instead of Django's HTML 400 page.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.conf import settings
from django.core.exceptions import RequestDataTooBig, TooManyFieldsSent
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse
from rest_framework import parsers, status, views
from rest_framework.exceptions import APIException, ParseError, ValidationError
from rest_framework.settings import api_settings

from notifications.events import LONE_SURROGATE, has_lone_surrogate

NON_FIELD = api_settings.NON_FIELD_ERRORS_KEY

FIELD_ERRORS = OpenApiResponse(
    response=OpenApiTypes.OBJECT,
    description='Field errors keyed by body path: {"channels[1].type": ["unknown …"]}.',
)


def flat_errors(detail: Any, path: str = "") -> dict[str, list[Any]]:
    """DRF's nested error detail as ``{"channels[1].type": [message, …]}``.

    Dict keys join with ``.``, list positions (a ListSerializer's list, a ListField's
    ``{index: …}``) become ``[i]``, and a nested ``non_field_errors`` folds into its parent's
    path, so every key points at the part of the body that is wrong.
    """
    flat: dict[str, list[Any]] = {}

    def add(sub: str, value: Any) -> None:
        for key, messages in flat_errors(value, sub).items():
            flat.setdefault(key, []).extend(messages)

    if isinstance(detail, Mapping):
        for key, value in detail.items():
            if key == NON_FIELD and path:
                add(path, value)
            elif isinstance(key, int):
                add(f"{path}[{key}]", value)
            else:
                add(f"{path}.{key}" if path else str(key), value)
        return flat
    if isinstance(detail, list) and any(isinstance(item, Mapping | list) for item in detail):
        for index, item in enumerate(detail):
            add(f"{path}[{index}]", item)
        return flat
    return {path or NON_FIELD: list(detail) if isinstance(detail, list) else [detail]}


class FlatErrorsMixin:
    """An APIView mixin that turns every ValidationError into the flat shape above."""

    def handle_exception(self, exc):
        if isinstance(exc, ValidationError):
            exc = ValidationError(flat_errors(exc.detail))
        return super().handle_exception(exc)  # type: ignore[misc]


def document_error_responses(result, generator, request, public):
    """drf-spectacular postprocessing hook: document the errors DRF answers for a whole kind
    of operation, so no view has to repeat them (a view that documents the code keeps its
    own): 404 where the path names an object (outside the caller's scope it does not exist)
    or the list takes a ``cursor`` (an invalid cursor), and 400 where a body is validated."""
    for path_item in result.get("paths", {}).values():
        for operation in path_item.values():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            parameters = operation.get("parameters", [])
            responses = operation["responses"]
            if any(
                p.get("in") == "path" or (p.get("in") == "query" and p.get("name") == "cursor")
                for p in parameters
            ):
                responses.setdefault(
                    "404", {"description": "No such object for the caller, or an invalid cursor."}
                )
            if "requestBody" in operation:
                responses.setdefault(
                    "400",
                    {
                        "description": "The body is not valid; errors keyed by field.",
                        "content": {
                            "application/json": {
                                "schema": {"type": "object", "additionalProperties": {}}
                            }
                        },
                    },
                )
    return result


class JSONParser(parsers.JSONParser):
    """DRF's JSON parser, answering 400 (not 500) for JSON nested deeper than Python's
    stack and for a string holding a lone UTF-16 surrogate, which the database refuses."""

    def parse(self, stream, media_type=None, parser_context=None):
        try:
            data = super().parse(stream, media_type, parser_context)
            lone_surrogate = has_lone_surrogate(data)
        except RecursionError:
            raise ParseError("JSON parse error - nested too deeply") from None
        if lone_surrogate:
            raise ParseError(f"JSON parse error - a string {LONE_SURROGATE}")
        return data


class BodyTooLarge(APIException):
    """A request body over the endpoint's limit: 413 ``{"detail": "… larger than 5 MB"}``."""

    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_code = "body_too_large"

    def __init__(self, limit_bytes: int) -> None:
        super().__init__(f"request body is larger than {limit_bytes / (1024 * 1024):g} MB")


def exception_handler(exc, context):
    """DRF's handler, plus Django's :class:`RequestDataTooBig` — raised when a parser reads a
    body over ``DATA_UPLOAD_MAX_MEMORY_SIZE`` — as :class:`BodyTooLarge`, for every API view
    (ingestion reads its body itself, up to its own larger limit), and its
    :class:`TooManyFieldsSent` (a form body of more than ``DATA_UPLOAD_MAX_NUMBER_FIELDS``
    fields) as a JSON 400."""
    if isinstance(exc, RequestDataTooBig):
        exc = BodyTooLarge(settings.DATA_UPLOAD_MAX_MEMORY_SIZE)
    elif isinstance(exc, TooManyFieldsSent):
        exc = ParseError(
            f"form body has more than {settings.DATA_UPLOAD_MAX_NUMBER_FIELDS} fields; "
            "send JSON for long lists"
        )
    return views.exception_handler(exc, context)
