# CHT -> DHIS2 OpenHIM mediator. Configure it with environment variables
# (see docs/openhim.md and README): CHT_*, DHIS2_*, OPENHIM_*, MEDIATOR_*.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# mediator/mediator-config.json is a link to the registration document at the top
# level (urn, version, channels, configDefs): copy its target first so the
# installed package carries it.
COPY pyproject.toml README.md mediator-config.json ./
COPY mediator ./mediator
RUN pip install . && rm -rf /app/mediator /app/build

RUN useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin mediator \
    && mkdir -p /var/lib/mediator && chown mediator /var/lib/mediator
USER mediator

# the status page's history and the CHT contacts kept between runs; mount a volume
# here so a new container keeps them (no secret is written there)
ENV MEDIATOR_HOST=0.0.0.0 \
    MEDIATOR_PORT=5011 \
    MEDIATOR_CONFIG_FILE=/app/mediator-config.json \
    MEDIATOR_STATE_DIR=/var/lib/mediator
VOLUME /var/lib/mediator

EXPOSE 5011

HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/health' % os.environ.get('MEDIATOR_PORT', '5011'), timeout=4)"]

CMD ["python", "-m", "mediator", "serve"]
