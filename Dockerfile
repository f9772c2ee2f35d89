# The giftcards service image: `giftcards <command>` (see docker-compose.yml).
# BASE: the Debian base that `make images` builds locally with debootstrap (no registry needed);
# with Docker and a registry, `--build-arg BASE=debian:bookworm-slim` works too (python3 is then
# installed from Debian's packages).
ARG BASE=localhost/giftcards-base:bookworm
FROM ${BASE}

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
# `make images` fills containers/wheels/ and builds offline (PIP_NO_INDEX=1).
ARG PIP_NO_INDEX=

RUN python3 -c 'import venv, ensurepip' 2>/dev/null || (apt-get update \
    && apt-get install -y --no-install-recommends python3 python3-venv \
    && rm -rf /var/lib/apt/lists/*)
RUN python3 -m venv /opt/giftcards
ENV PATH=/opt/giftcards/bin:$PATH

WORKDIR /app
# Only the packaged sources: the build context also holds .venv/ and var/, which must not ship.
COPY containers/wheels /wheels
COPY pyproject.toml ./
COPY domain domain
COPY application application
COPY infra infra
COPY projections projections
COPY consumers consumers
COPY composition composition
COPY entrypoints entrypoints
RUN pip install --find-links /wheels . && rm -rf /wheels \
    && useradd --create-home --uid 10001 giftcards \
    && mkdir -p /app/var /app/chain && chown giftcards /app/var /app/chain

USER giftcards
# Production refuses a missing GIFTCARDS_SECRET_KEY and a pinned clock (infra/config.py).
# The chain key lives outside the data dir (mount its own volume on /app/chain).
ENV GIFTCARDS_ENV=production \
    GIFTCARDS_DATA_DIR=/app/var \
    GIFTCARDS_CHAIN_KEY_FILE=/app/chain/chain.key
EXPOSE 8080
ENTRYPOINT ["giftcards"]
CMD ["serve"]
