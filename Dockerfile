FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml ./
COPY . .
RUN pip install --no-cache-dir . && python manage.py collectstatic --no-input -v0
ENV DJANGO_DEBUG=0
EXPOSE 8000
