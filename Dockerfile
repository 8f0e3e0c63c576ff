# One image for every ChemWatch process; docker-compose.yml picks the subcommand
# (chemwatch ingest | detect | alerting | simulate).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# Project metadata first (README.md* is optional: the glob lets the build pass without it).
COPY pyproject.toml README.md* ./
COPY common/ common/
COPY ingest/ ingest/
COPY detectors/ detectors/
COPY alerting/ alerting/
COPY simulators/ simulators/
COPY chemwatch/ chemwatch/
RUN pip install . && rm -rf build *.egg-info

# The example plant registry (CHEMWATCH_PLANT=/app/examples/plant.yaml in compose).
COPY examples/ examples/

RUN useradd --system --uid 10001 --home-dir /app --shell /usr/sbin/nologin chemwatch
USER chemwatch

CMD ["chemwatch", "--help"]
