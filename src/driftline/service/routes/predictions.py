"""GET /predictions: logged predictions with their labels, filtered and paginated."""

from __future__ import annotations

import time
from datetime import datetime
from typing import Annotated, Any

import numpy as np
from fastapi import APIRouter, Depends, Query

from driftline.durations import parse_duration
from driftline.errors import ConfigurationError, ValidationError
from driftline.limits import MAX_ROW_ID, MAX_VERSION
from driftline.schema import label_text
from driftline.service.deps import RuntimeDep, SessionDep, require_read
from driftline.service.schemas import PredictionsPage
from driftline.store import queries

router = APIRouter(tags=["predictions"], dependencies=[Depends(require_read)])


@router.get("/predictions", response_model=PredictionsPage)
def list_predictions(
    session: SessionDep,
    runtime: RuntimeDep,
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
            start_ts = time.time() - parse_duration(window, "window")
        except ConfigurationError as exc:
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
    # Predictions and labels are stored as text; answer with the model's own class values, as
    # /predict does (0, not "0"), for every version this worker has loaded.
    values = {
        label_text(c): c.item() if isinstance(c, np.generic) else c
        for bundle in (runtime.champion, runtime.routing.challenger)
        if bundle is not None
        for c in bundle.classes
    }
    items = [
        {
            **item,
            "prediction": values.get(item["prediction"], item["prediction"]),
            "label": values.get(item["label"], item["label"])
            if item["label"] is not None
            else None,
        }
        for item in page.items
    ]
    return {
        "items": items,
        "total": page.total,
        "limit": limit,
        "offset": offset,
        "next_offset": next_offset,
    }
