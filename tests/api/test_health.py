import pytest

pytestmark = [pytest.mark.integration, pytest.mark.django_db]


def test_health_reports_each_service_ok(client):
    response = client.get("/api/health/")
    assert response.status_code == 200
    assert response.json() == {"database": "ok", "redis": "ok", "kafka": "ok"}


def test_health_names_the_service_that_is_down(client, settings):
    settings.REDIS_URL = "redis://127.0.0.1:1/0"
    response = client.get("/api/health/")
    assert response.status_code == 503
    body = response.json()
    assert body["database"] == "ok"
    assert body["kafka"] == "ok"
    assert body["redis"].startswith("error: ")


def test_schema_and_docs_are_served(client):
    assert client.get("/api/schema/").status_code == 200
    assert client.get("/api/docs/").status_code == 200
