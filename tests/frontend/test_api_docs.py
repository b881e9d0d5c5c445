"""The API docs (Swagger UI at /api/docs/) in Chromium with every request that leaves the
live server refused: the page must render from notiflow's own files."""

from __future__ import annotations

from html.parser import HTMLParser
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import expect

from tests.frontend.conftest import shot

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def test_swagger_ui_renders_the_operations_with_no_request_leaving_the_server(page, live_server):
    own = urlsplit(live_server.url).netloc
    refused: list[str] = []
    statuses: dict[str, int] = {}

    def only_own_host(route):
        if urlsplit(route.request.url).netloc == own:
            route.continue_()
        else:
            refused.append(route.request.url)
            route.abort()

    page.route("**/*", only_own_host)
    page.on("response", lambda response: statuses.__setitem__(response.url, response.status))

    page.goto("/api/docs/")
    expect(page.locator(".swagger-ui .info .title")).to_contain_text("notiflow API")
    expect(page.locator(".opblock-summary-path", has_text="/api/me/")).to_be_visible()
    expect(page.locator(".opblock-summary-path", has_text="/api/channels/").first).to_be_visible()
    assert page.locator(".opblock").count() > 50
    shot(page, "api-docs")

    assert refused == []
    assets = {url: code for url, code in statuses.items() if "/static/" in url}
    assert any(url.endswith("/swagger-ui-bundle.js") for url in assets), statuses
    assert set(assets.values()) == {200}, assets


class _Links(HTMLParser):
    def __init__(self):
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.urls += [value for name, value in attrs if name in {"src", "href"} and value]


def test_the_docs_page_names_no_other_host(client):
    """Each script, style sheet and icon is a path on this server."""
    response = client.get("/api/docs/")
    assert response.status_code == 200
    parser = _Links()
    parser.feed(response.content.decode())
    assert any(url.endswith("/swagger-ui-bundle.js") for url in parser.urls), parser.urls
    assert [url for url in parser.urls if urlsplit(url).netloc] == []
