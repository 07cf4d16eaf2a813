# Gatekeeper, one replica per container: `gatekeeper serve` (ENTRYPOINT + CMD below).
# Build from the repository root:  docker build -t gatekeeper:local .
# deploy/compose.yaml builds and runs it with everything around it; deploy/kubernetes/ runs
# it on a cluster. The listeners bind 0.0.0.0 inside the container: 8080 for bots (put only
# this one behind the load balancer), 8081 for operators (/healthz, /readyz, /metrics, the
# admin API). Settings come from the environment (GATEKEEPER_<SECTION>__<KEY>, DATABASE_URL,
# REDIS_URL) over config/gatekeeper.toml. tests/unit/test_deploy_runtime.py runs this
# file's ENTRYPOINT, CMD, ENV and HEALTHCHECK against a real Postgres and Redis.

FROM python:3.11-slim-bookworm AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/gatekeeper
WORKDIR /app
COPY pyproject.toml README.md setup.py ./
COPY build_support ./build_support
COPY gatekeeper ./gatekeeper
COPY sql ./sql
COPY config ./config
# Editable, so the migrations are read from /app/sql beside the package (as from a clone).
RUN /opt/gatekeeper/bin/pip install -e /app \
    && /opt/gatekeeper/bin/python -m compileall -q /app/gatekeeper

FROM python:3.11-slim-bookworm
ENV PATH=/opt/gatekeeper/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    GATEKEEPER_PROXY__HOST=0.0.0.0 \
    GATEKEEPER_ADMIN__HOST=0.0.0.0 \
    GATEKEEPER_LOG_FORMAT=json
RUN useradd --system --uid 10001 --user-group --no-create-home --shell /usr/sbin/nologin gatekeeper
COPY --from=build /opt/gatekeeper /opt/gatekeeper
COPY --from=build /app /app
WORKDIR /app
# Non-root, by number (Kubernetes' runAsNonRoot checks it); nothing is written at run time.
USER 10001:10001
EXPOSE 8080 8081
# Liveness: the admin listener answers (readiness, /readyz, is the load balancer's business).
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('GATEKEEPER_ADMIN__PORT', '8081'), timeout=2)"]
ENTRYPOINT ["gatekeeper"]
CMD ["serve"]
