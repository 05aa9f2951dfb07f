# syntax=docker/dockerfile:1
#
# driftline's container image: the API (`driftline serve`) as a non-root user, state in a volume.
#
#   docker build -t driftline .                                # the base install
#   docker build -t driftline:full --build-arg EXTRAS=imbalanced,tracing .
#   docker run -p 8000:8000 -e DRIFTLINE_ADMIN_TOKEN=... -v driftline:/var/lib/driftline driftline
#
# NOT BUILT HERE: no container engine and no base-image registry is reachable on the machines
# driftline is developed and tested on, so this image has never been built. What can be checked
# is checked by tests/deploy/test_image.py: hadolint lints this file, and the test runs this
# file's own RUN commands (the wheel build, the install), then the ENTRYPOINT + CMD and the
# HEALTHCHECK exactly as written here, in a fresh virtual environment instead of an image.
#
# Tokens come from the environment at run time (never baked in): DRIFTLINE_ADMIN_TOKEN (at
# least 16 characters), DRIFTLINE_LABELS_TOKEN, DRIFTLINE_READ_TOKEN. A server bound beyond
# loopback refuses to start without them unless DRIFTLINE_ALLOW_UNAUTHENTICATED=true says so explicitly.

ARG PYTHON_VERSION=3.12

# --- stage 1: build the wheel ----------------------------------------------------------------
FROM python:${PYTHON_VERSION}-slim AS build
ARG WHEEL_DIR=/wheels
WORKDIR /build
COPY pyproject.toml README.md ./
COPY src ./src
RUN python -m pip wheel --no-cache-dir --no-deps --wheel-dir "${WHEEL_DIR}" .

# --- stage 2: the runtime --------------------------------------------------------------------
FROM python:${PYTHON_VERSION}-slim
# Optional extras, comma-separated: lstm, imbalanced, tracing (see pyproject.toml).
ARG EXTRAS=""
ARG WHEEL_DIR=/wheels
LABEL org.opencontainers.image.title="driftline" \
      org.opencontainers.image.description="Drift-aware ML serving and monitoring" \
      org.opencontainers.image.licenses="Apache-2.0"

# OMP_NUM_THREADS=1: one OpenMP thread per process. scikit-learn's gradient boosting predicts
# with OpenMP, which sizes itself to the host's cores, not the container's CPU share; under load
# those threads wait on each other (benchmarks/loadtest_capacity.py). Scale with replicas.
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    OMP_NUM_THREADS=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    DRIFTLINE_HOME=/var/lib/driftline \
    DRIFTLINE_PORT=8000 \
    DRIFTLINE_LOG_FORMAT=json

RUN groupadd --system --gid 10001 driftline \
    && useradd --system --uid 10001 --gid driftline --no-create-home \
       --home-dir /var/lib/driftline --shell /usr/sbin/nologin driftline \
    && mkdir -p /var/lib/driftline \
    && chown driftline:driftline /var/lib/driftline

COPY --from=build ${WHEEL_DIR} ${WHEEL_DIR}
# The wheel is this build's own file: its version is pinned by the file name (hence DL3013).
# hadolint ignore=DL3013
RUN set -e; for wheel in "${WHEEL_DIR}"/driftline-*.whl; do \
      python -m pip install --no-cache-dir "${wheel}${EXTRAS:+[$EXTRAS]}"; \
    done; \
    rm -rf "${WHEEL_DIR}"

USER 10001:10001
WORKDIR /var/lib/driftline
VOLUME ["/var/lib/driftline"]
EXPOSE 8000

# /health answers 200 while the process serves; readiness (/ready) is the orchestrator's job.
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('DRIFTLINE_PORT', '8000') + '/health', timeout=4)"]

# SIGTERM stops uvicorn gracefully: in-flight requests finish and the writer drains its queue.
STOPSIGNAL SIGTERM
ENTRYPOINT ["driftline"]
CMD ["serve", "--host", "0.0.0.0"]
