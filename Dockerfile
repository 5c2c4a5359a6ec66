# gate-sidecar container image.
#
#   docker build -t gate-sidecar:0.1.0 .
#   docker run --rm --read-only --tmpfs /tmp -v "$PWD/sidecar.yaml:/etc/gate-sidecar/config.yaml:ro" \
#       gate-sidecar:0.1.0
#
# Two stages: the build stage turns the source into a wheel and installs it, with its
# dependencies, into a venv that has no pip; the runtime stage is the same base image with only
# that venv copied in. The base image tag is pinned (pin its digest too in your own build).
# BASE_IMAGE may be any image with python3 (3.11+) and its venv module at the same path in both
# stages: `make image-test` passes a Debian bookworm base built with mmdebstrap where Docker Hub
# is out of reach. tests/test_dockerfile.py parses this file and replays the build stage's RUN
# step; tests/test_image.py builds and runs the image with podman.

ARG BASE_IMAGE=python:3.12.11-slim-bookworm

FROM ${BASE_IMAGE} AS build
# pip checks PyPI's certificate against the system's CA bundle (which a build behind a
# TLS-inspecting proxy mounts from its host), not the copy of certifi it carries.
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_CERT=/etc/ssl/certs/ca-certificates.crt
WORKDIR /src
COPY pyproject.toml README.md ./
COPY sidecar/ sidecar/
# A throwaway venv (under /wheels, which stays in this stage) brings pip, whichever base it is;
# it installs into the runtime venv from outside it (--python), so that venv carries no pip. The
# install compiles every module to bytecode, so the read-only runtime never needs to write any.
# The [fast] extra brings uvloop, which the sidecar runs on when it is there.
RUN python3 -m venv /wheels/pip \
 && /wheels/pip/bin/pip wheel --no-deps --wheel-dir /wheels . \
 && python3 -m venv --without-pip /opt/gate-sidecar \
 && /wheels/pip/bin/pip --python /opt/gate-sidecar/bin/python install \
    "$(echo /wheels/gate_sidecar-*.whl)[fast]"

FROM ${BASE_IMAGE}
LABEL org.opencontainers.image.title="gate-sidecar" \
      org.opencontainers.image.description="A signing proxy for the Gate.io API v4" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=build /opt/gate-sidecar /opt/gate-sidecar
# HOME=/tmp: the only writable place under a read-only root filesystem (the chart mounts a tmpfs).
ENV PATH=/opt/gate-sidecar/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp
# A numeric user and group that exist nowhere else, so Kubernetes can verify runAsNonRoot.
USER 10001:10001
# The admin listener (/healthz, /readyz, /metrics); key listeners are per config.
EXPOSE 9901
ENTRYPOINT ["gate-sidecar"]
CMD ["serve", "--config", "/etc/gate-sidecar/config.yaml"]
