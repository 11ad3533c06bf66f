# One image for the API, the worker and migrations.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app

COPY pyproject.toml README.md ./
COPY deeployd ./deeployd
COPY api ./api
COPY workflows ./workflows
COPY activities ./activities
COPY worker.py ./
RUN pip install . && useradd --system --home /app deeployd
USER deeployd

EXPOSE 8000
CMD ["deeployd", "api", "--host", "0.0.0.0", "--port", "8000"]
