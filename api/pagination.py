"""Keyset ("seek") pagination for the API's newest-first lists.

DRF's :class:`~rest_framework.pagination.CursorPagination` puts only the first ordering
field in its cursor and skips ties by counting them, up to 1,000: past 1,000 rows with one
timestamp (a batch import, a replay, a fan-out written in one statement) its ``next`` link
points at the page it came from, forever. Here the cursor is the whole position — the
ordering column *and* the unique tie-breaker — so a page starts strictly after the last row
of the one before, whatever the ties: every row once, and the walk ends.

Contract: ``ordering`` is two fields in the same direction, a column and a unique column
(the id); the queryset's other filters are kept; one query per page; ``next``/``previous``
are links (``previous`` null on the first page, ``next`` null on the last); a cursor that
is not one of ours is a 404, as with DRF's.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import Q, QuerySet
from rest_framework.exceptions import NotFound
from rest_framework.pagination import CursorPagination
from rest_framework.utils.urls import remove_query_param, replace_query_param


@dataclass(frozen=True)
class Position:
    """Where a page starts: the (column, tie-breaker) values of the row next to it, and
    whether the page lies before (``backwards``) or after that row in the list's order."""

    values: tuple[Any, Any]
    backwards: bool = False


def _flip(name: str) -> str:
    return name[1:] if name.startswith("-") else f"-{name}"


def _plain(value: Any) -> Any:
    return value.isoformat() if hasattr(value, "isoformat") else value


class KeysetPagination(CursorPagination):
    """Newest-first pages by (column, id); see the module docstring. Subclasses set
    ``ordering`` and ``page_size``; DRF's response shape, schema and HTML are kept."""

    ordering: tuple[str, str] = ("-created_at", "-id")
    page_size = 50
    invalid_cursor_message = "Invalid cursor"

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        first, second = cls.ordering
        if first.startswith("-") != second.startswith("-"):
            raise TypeError(f"{cls.__name__}.ordering must run one way: {cls.ordering}")

    def paginate_queryset(self, queryset: QuerySet, request, view=None):
        self.base_url = request.build_absolute_uri()
        self.request = request
        self._names = tuple(name.lstrip("-") for name in self.ordering)
        self._fields = [queryset.model._meta.get_field(name) for name in self._names]
        cursor = self._decode(request.query_params.get(self.cursor_query_param))
        backwards = cursor is not None and cursor.backwards
        order = [_flip(name) for name in self.ordering] if backwards else list(self.ordering)
        if cursor is not None:
            queryset = queryset.filter(self._beyond(cursor.values, order))
        rows = list(queryset.order_by(*order)[: self.page_size + 1])
        more = len(rows) > self.page_size
        rows = rows[: self.page_size]
        if backwards:
            rows.reverse()
        self._rows = rows
        # Forward, there is a next page when the query found one row more, and a previous
        # one whenever a cursor led here; backwards, the other way round.
        self.has_next = bool(rows) and (backwards or more)
        self.has_previous = cursor is not None and (more if backwards else True)
        self.page = rows
        return rows

    def _beyond(self, values: tuple[Any, Any], order: list[str]) -> Q:
        """Rows strictly after ``values`` in ``order``: on or past the column's value, and
        not at it with a tie-breaker up to the one given (index-friendly: a range on the
        column, the tie-breaker as a filter)."""
        (column, tie), (at, tie_at) = (name.lstrip("-") for name in order), values
        past, upto = ("lte", "gte") if order[0].startswith("-") else ("gte", "lte")
        return Q(**{f"{column}__{past}": at}) & ~Q(**{column: at, f"{tie}__{upto}": tie_at})

    def _position(self, row) -> tuple[Any, Any]:
        first, second = self._names
        if isinstance(row, dict):  # a ``.values()`` row
            return (row[first], row[second])
        return (getattr(row, first), getattr(row, second))

    def _decode(self, text: str | None) -> Position | None:
        if not text:
            return None
        try:
            data = json.loads(base64.urlsafe_b64decode(text.encode("ascii")))
            values = tuple(
                field.to_python(value) for field, value in zip(self._fields, data["p"], strict=True)
            )
            backwards = data.get("b", False)
        except (
            binascii.Error,
            UnicodeError,
            ValueError,
            TypeError,
            KeyError,
            DjangoValidationError,
        ):
            raise NotFound(self.invalid_cursor_message) from None
        if len(values) != 2 or None in values or not isinstance(backwards, bool):
            raise NotFound(self.invalid_cursor_message)
        return Position(values=(values[0], values[1]), backwards=backwards)

    def _link(self, values: tuple[Any, Any], *, backwards: bool) -> str:
        data: dict[str, Any] = {"p": [_plain(value) for value in values]}
        if backwards:
            data["b"] = True
        token = base64.urlsafe_b64encode(json.dumps(data).encode()).decode("ascii")
        return replace_query_param(self.base_url, self.cursor_query_param, token)

    def get_next_link(self) -> str | None:
        if not self.has_next:
            return None
        return self._link(self._position(self._rows[-1]), backwards=False)

    def get_previous_link(self) -> str | None:
        """The page before this one's first row; from a page left empty (its rows were
        archived or read away meanwhile) the list's first page, so nothing is skipped."""
        if not self.has_previous:
            return None
        if not self._rows:
            return remove_query_param(self.base_url, self.cursor_query_param)
        return self._link(self._position(self._rows[0]), backwards=True)
