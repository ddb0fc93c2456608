# One image for every Copilot process (web, worker, beat, relay); docker-compose.yml picks
# the command. Dependencies come from the hash-pinned lock file only.
FROM python:3.12-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    COPILOT_VAR_DIR=/app/var

WORKDIR /app
COPY requirements.lock .
RUN pip install --no-cache-dir --require-hashes -r requirements.lock

COPY . .
# Static files are collected at build time; WhiteNoise serves them from the image.
RUN SECRET_KEY=collectstatic-only python manage.py collectstatic --no-input -v 0 \
    && useradd --system --home /app copilot && chown -R copilot /app/var
USER copilot

EXPOSE 8000
CMD ["python", "manage.py", "serve", "--host", "0.0.0.0", "--port", "8000"]
