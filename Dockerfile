# lrserve: the learning-rate service, with its SQLite database on the /data volume.
#   docker build -t lrserve .
#   docker run -p 8000:8000 -v lrserve-data:/data lrserve
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# Only what the wheel needs; tests, benchmarks and local databases stay out (see .dockerignore).
COPY pyproject.toml README.md ./
COPY service/ service/
COPY client/ client/
# "./[server]" is pip's ".[server]" spelled as a path, so hadolint (DL3013) sees a local
# project rather than an unpinned package from an index.
RUN pip install --no-cache-dir "./[server]"

# A fixed, unprivileged user owns the data directory; the volume inherits that ownership.
RUN groupadd --gid 10001 lrserve \
    && useradd --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent lrserve \
    && mkdir /data \
    && chown 10001:10001 /data
# Numeric, so that runtimes enforcing runAsNonRoot can verify it without /etc/passwd.
USER 10001:10001
VOLUME /data
# `docker stop` sends SIGTERM and, 10 s later, SIGKILL: requests still running after 8 s are cut, so
# that the service exits on its own first. Raise both together (`docker stop -t`,
# terminationGracePeriodSeconds). More processes on the one port: LRSERVE_WORKERS.
ENV LRSERVE_DATABASE_URL=sqlite:////data/lrserve.db \
    LRSERVE_WORKERS=1 \
    LRSERVE_SHUTDOWN_TIMEOUT=8

EXPOSE 8000

# The slim image has no curl: probe with the interpreter that is already there.
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4).status == 200 else 1)"]

CMD ["lrserve", "serve", "--host", "0.0.0.0", "--port", "8000"]
