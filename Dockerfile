# One image for the tracker, both consumers and the reports service; the command picks it:
#   docker run IMAGE tracker serve | consumers events | consumers programs | consumers init
#                    | reports serve | reports keys create --customer CID
# `docker build .` builds that service image (the last stage). `--target lambda` builds the
# consumers' AWS Lambda image: the same image plus the Lambda runtime interface client.
# Build context: the repository root (see .dockerignore).
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
# Every Python package comes from a lock in requirements/: exact versions, hash-checked, wheels
# only (see the Makefile). pip, setuptools and wheel first, then the protobuf generator in a venv
# of its own that is only a tool of this stage. They come before any source, so that editing the
# code or the README reuses these layers.
COPY requirements/bootstrap.lock requirements/protoc.lock requirements/runtime.lock ./requirements/
ARG PIP_LOCKED="pip install --no-compile --require-hashes --only-binary=:all:"
RUN python -m venv /opt/protoc \
    && /opt/protoc/bin/${PIP_LOCKED} -r requirements/bootstrap.lock \
    && /opt/protoc/bin/${PIP_LOCKED} -r requirements/protoc.lock
# The runtime dependencies next: this layer is reused until the lock changes.
# botocore ships models for ~400 AWS services; the services use Kinesis and DynamoDB, SQS
# (`consumers redrive` reads the Lambda failure queue), Glue (the event lake's catalog, through
# pyiceberg; its S3 files go through pyarrow, not botocore) and STS/SSO for credentials. Dropping
# the rest halves the virtualenv (100 MB -> 50 MB).
RUN python -m venv /opt/venv \
    && /opt/venv/bin/${PIP_LOCKED} -r requirements/bootstrap.lock \
    && /opt/venv/bin/${PIP_LOCKED} -r requirements/runtime.lock \
    && find /opt/venv/lib/python3.11/site-packages/botocore/data -mindepth 1 -maxdepth 1 -type d \
        ! -name kinesis ! -name dynamodb ! -name sqs ! -name glue ! -name sts ! -name sso \
        ! -name sso-oidc -exec rm -rf {} + \
    && python -m compileall -q /opt/venv/lib
# The generated protobuf code is rebuilt from proto/ (over the committed copy), then the project
# is installed; pyproject names README.md as the long description, so it is copied too.
COPY proto ./proto
COPY tracker ./tracker
COPY consumers ./consumers
COPY reports ./reports
COPY pyproject.toml README.md ./
RUN /opt/protoc/bin/python -m grpc_tools.protoc -I proto \
        --python_out=tracker/schema --pyi_out=tracker/schema \
        proto/tracking/v1/tracking.proto proto/kinesis/v1/aggregation.proto \
    && /opt/venv/bin/pip install --no-deps --no-build-isolation --no-compile . \
    && /opt/venv/bin/python -m pip uninstall --yes pip setuptools wheel packaging \
    && python -m compileall -q /opt/venv/lib/python3.11/site-packages/tracker \
        /opt/venv/lib/python3.11/site-packages/consumers \
        /opt/venv/lib/python3.11/site-packages/reports

# The Lambda runtime interface client and its dependencies, locked, in a directory of their own:
# the lambda stage adds it to the service image, whose venv stays exactly the service's.
FROM ${PYTHON_IMAGE} AS lambda-ric
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore
COPY requirements/lambda-ric.lock /tmp/
RUN python -m pip install --no-compile --require-hashes --only-binary=:all: \
        --target /opt/lambda-ric -r /tmp/lambda-ric.lock \
    && python -m compileall -q /opt/lambda-ric

FROM ${PYTHON_IMAGE} AS runtime
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HEALTHCHECK_URL=http://127.0.0.1:8080/healthz
# uid and gid 10001: the EFS access point of the deployment (infra/cloudformation) writes as
# 10001:10001, so files in a shared spill directory belong to the same user everywhere. A plain
# (not --system) account: 10001 is outside the system id range, which --system warns about.
# No home directory and no login shell: the services need neither.
RUN groupadd --gid 10001 app \
    && useradd --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin app \
    && install -d -o 10001 -g 10001 -m 0750 /var/lib/adtracker/spill
COPY --from=build /opt/venv /opt/venv
# The tracker's on-disk event log (see docs/deploy.md, "The spill volume"). A VOLUME, so that
# it is not in the container's writable layer: Docker creates an anonymous volume when nothing
# is mounted there; mount a named volume (or EFS in ECS) for events to outlive the container.
# Docker fills an empty named volume from this directory, owner and mode included.
ENV SPILL_DIR=/var/lib/adtracker/spill
VOLUME ["/var/lib/adtracker/spill"]
USER 10001
EXPOSE 8080 8090 9101
# The consumers serve /healthz on their metrics port, reports on 8090: their services set
# HEALTHCHECK_URL to it.
HEALTHCHECK --interval=10s --timeout=3s --start-period=15s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen(os.environ['HEALTHCHECK_URL'], timeout=2)"]
# Exec form, no shell in between: SIGTERM reaches Python, which drains and exits.
CMD ["tracker", "serve"]

# The consumers on AWS Lambda (docs/deploy.md): `docker build --target lambda .`. The events
# function uses the default CMD; the programs function overrides it with
# consumers.lambda_handlers.programs_handler. Lambda calls the handler; nothing listens here.
FROM runtime AS lambda
COPY --from=lambda-ric /opt/lambda-ric /opt/lambda-ric
ENV PYTHONPATH=/opt/lambda-ric
HEALTHCHECK NONE
ENTRYPOINT ["python", "-m", "awslambdaric"]
CMD ["consumers.lambda_handlers.events_handler"]

# The default target, last: the service image.
FROM runtime AS service
