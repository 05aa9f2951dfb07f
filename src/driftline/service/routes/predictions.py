"""GET /predictions: logged predictions with their labels, filtered and paginated."""

from __future__ import annotations

import re
import time
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query

from driftline.errors import ValidationError
from driftline.limits import MAX_ROW_ID, MAX_VERSION
from driftline.service.deps import SessionDep
from driftline.service.schemas import PredictionsPage
from driftline.store import queries

router = APIRouter(tags=["predictions"])

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(text: str) -> float:
    """Seconds in a duration such as ``90s``, ``15m``, ``6h``, ``2d``.

    >>> parse_duration("6h"), parse_duration("90s")
    (21600.0, 90.0)
    """
    match = _DURATION.match(text)
    if match is None:
        raise ValueError(f"not a duration: {text!r} (use e.g. 30s, 15m, 6h, 2d, 1w)")
    return float(match.group(1)) * _UNIT_SECONDS[match.group(2)]


@router.get("/predictions", response_model=PredictionsPage)
def list_predictions(
    session: SessionDep,
    window: Annotated[
        str | None, Query(description="Only the last duration, e.g. 15m, 6h, 2d.")
    ] = None,
    start: Annotated[datetime | None, Query(description="ISO 8601 time or UNIX seconds.")] = None,
    end: Annotated[datetime | None, Query(description="ISO 8601 time or UNIX seconds.")] = None,
    version: Annotated[int | None, Query(ge=1, le=MAX_VERSION)] = None,
    has_label: Annotated[bool | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=MAX_ROW_ID)] = 0,
) -> dict[str, Any]:
    """Predictions, newest first, each with its label once one has arrived."""
    start_ts = start.timestamp() if start is not None else None
    if window is not None:
        try:
            start_ts = time.time() - parse_duration(window)
        except ValueError as exc:
            raise ValidationError(
                [{"loc": ["query", "window"], "msg": str(exc), "type": "value_error"}]
            ) from exc
    page = queries.list_predictions(
        session=session,
        start=start_ts,
        end=end.timestamp() if end is not None else None,
        version=version,
        has_label=has_label,
        limit=limit,
        offset=offset,
    )
    next_offset = offset + limit if offset + limit < page.total else None
    return {
        "items": page.items,
        "total": page.total,
        "limit": limit,
        "offset": offset,
        "next_offset": next_offset,
    }
