# The giftcards service image: `giftcards <command>` (see docker-compose.yml).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
# Only the packaged sources: the build context also holds .venv/ and var/, which must not ship.
COPY pyproject.toml ./
COPY domain domain
COPY application application
COPY infra infra
COPY projections projections
COPY consumers consumers
COPY entrypoints entrypoints
RUN pip install . \
    && useradd --create-home --uid 10001 giftcards \
    && mkdir -p /app/var && chown giftcards /app/var

USER giftcards
# Production refuses a missing GIFTCARDS_SECRET_KEY and a pinned clock (infra/config.py).
ENV GIFTCARDS_ENV=production \
    GIFTCARDS_DATA_DIR=/app/var
EXPOSE 8080
ENTRYPOINT ["giftcards"]
CMD ["serve", "--api-host", "0.0.0.0", "--api-port", "8080"]
