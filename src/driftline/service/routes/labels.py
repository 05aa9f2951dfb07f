"""POST /labels: ground truth, acknowledged only once durable."""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter, Depends
from fastapi.concurrency import run_in_threadpool

from driftline.errors import ValidationError
from driftline.schema import label_text
from driftline.service.deps import RuntimeDep, require_labels
from driftline.service.schemas import LabelIn, LabelsRequest, LabelsResponse

router = APIRouter(tags=["labels"], dependencies=[Depends(require_labels)])


@router.post(
    "/labels",
    response_model=LabelsResponse,
    responses={
        422: {"description": "A malformed label; every bad field is named."},
        503: {"description": "Neither the store nor the local spill log could take the labels."},
    },
)
async def post_labels(body: LabelsRequest | LabelIn, runtime: RuntimeDep) -> dict[str, Any]:
    """Record the true class of one request (``{request_id, label}``) or many
    (``{"labels": [...]}``). Labels are joined to predictions by ``request_id`` and may arrive
    before the prediction is written. The answer comes only after the labels are durable: in
    the store, or fsync'd to the spill log while the store is unreachable (replayed later).
    """
    items = body.labels if isinstance(body, LabelsRequest) else [body]
    limit = runtime.settings.max_batch_size
    if len(items) > limit:
        raise ValidationError(
            [
                {
                    "loc": ["body", "labels"],
                    "msg": f"{len(items)} labels exceed the limit of {limit} per request",
                    "type": "too_long",
                }
            ]
        )
    now = time.time()
    rows = [{"request_id": i.request_id, "label": label_text(i.label), "ts": now} for i in items]
    durable = await run_in_threadpool(runtime.record_labels, rows)
    return {"accepted": len(rows), "durable": durable}
