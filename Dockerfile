FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml ./
COPY . .
RUN pip install --no-cache-dir . && python manage.py collectstatic --no-input -v0
# Production settings. The image carries no keys: pass DJANGO_SECRET_KEY and
# NOTIFLOW_SECRETS_KEYS at run time (docker run -e …, or docker-compose.yml); without them
# every process refuses to start with one line naming the missing variable.
ENV DJANGO_DEBUG=0
EXPOSE 8000
