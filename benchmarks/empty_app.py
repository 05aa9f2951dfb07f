"""The ceiling of benchmarks/serving.py: an endpoint that does nothing, on the same stack as
``driftline serve`` (uvicorn with uvloop and httptools, FastAPI, an ``async def`` route that
parses the JSON body). No server on this stack can answer /predict faster."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

app = FastAPI()


@app.get("/health")
async def health() -> dict[str, str]:
    return {"status": "ok"}


@app.post("/predict")
async def predict(body: dict[str, Any]) -> dict[str, Any]:
    return {}
