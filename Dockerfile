# One image for the tracker and both consumers; the command picks the service:
#   docker run IMAGE tracker serve | consumers events | consumers programs | consumers init
# Build context: the repository root (see .dockerignore).
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
RUN python -m venv /opt/venv
# Pinned runtime dependencies first: this layer is reused until the lock file changes.
COPY requirements.lock ./
RUN /opt/venv/bin/pip install --no-compile -r requirements.lock
# The generated protobuf code is rebuilt here from proto/, with the generator version CI pins.
COPY proto ./proto
COPY tracker ./tracker
COPY consumers ./consumers
COPY pyproject.toml README.md ./
RUN python -m venv /opt/protoc \
    && /opt/protoc/bin/pip install "grpcio-tools==1.85.1" \
    && /opt/protoc/bin/python -m grpc_tools.protoc -I proto \
        --python_out=tracker/schema --pyi_out=tracker/schema \
        proto/tracking/v1/tracking.proto proto/kinesis/v1/aggregation.proto \
    && /opt/venv/bin/pip install --no-deps --no-compile . \
    && /opt/venv/bin/python -m pip uninstall --yes pip setuptools
# botocore ships models for ~400 AWS services; the services use Kinesis and DynamoDB, and STS/SSO
# for credentials. Dropping the rest halves the virtualenv (100 MB -> 50 MB).
RUN find /opt/venv/lib/python3.11/site-packages/botocore/data -mindepth 1 -maxdepth 1 -type d \
        ! -name kinesis ! -name dynamodb ! -name sts ! -name sso ! -name sso-oidc \
        -exec rm -rf {} + \
    && python -m compileall -q /opt/venv/lib

FROM ${PYTHON_IMAGE}
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HEALTHCHECK_URL=http://127.0.0.1:8080/healthz
# uid and gid 10001: the EFS access point of the deployment (infra/cloudformation) writes as
# 10001:10001, so files in a shared spill directory belong to the same user everywhere.
RUN groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --shell /usr/sbin/nologin app \
    && install -d -o 10001 -g 10001 -m 0750 /var/lib/adtracker/spill
COPY --from=build /opt/venv /opt/venv
# The tracker's on-disk event log (see docs/deploy.md, "The spill volume"). A VOLUME, so that
# it is not in the container's writable layer: Docker creates an anonymous volume when nothing
# is mounted there; mount a named volume (or EFS in ECS) for events to outlive the container.
# Docker fills an empty named volume from this directory, owner and mode included.
ENV SPILL_DIR=/var/lib/adtracker/spill
VOLUME ["/var/lib/adtracker/spill"]
USER 10001
EXPOSE 8080 9101
# The consumers serve /healthz on their metrics port: their services set HEALTHCHECK_URL to it.
HEALTHCHECK --interval=10s --timeout=3s --start-period=15s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen(os.environ['HEALTHCHECK_URL'], timeout=2)"]
# Exec form, no shell in between: SIGTERM reaches Python, which drains and exits.
CMD ["tracker", "serve"]
