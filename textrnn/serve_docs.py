"""The API's documentation pages, ``/docs`` (Swagger UI) and ``/redoc``, with no network.

FastAPI's own pages load Swagger UI and ReDoc from a CDN, so on a machine that is offline
(or only on a local network) they were blank. The ``fastapi-offline`` package, a
dependency of the ``serve`` extra, ships both as files; they are served from
:data:`ASSETS_URL`, and the pages point only there::

    GET /docs                      Swagger UI over /openapi.json
    GET /docs/oauth2-redirect      its OAuth2 helper page (FastAPI's, nothing external)
    GET /redoc                     ReDoc over /openapi.json
    GET /docs-assets/{file}        swagger-ui-bundle.js, swagger-ui.css,
                                   redoc.standalone.js, favicon.png
"""

from importlib.resources import files

import fastapi_offline  # for its files only; imported here so a missing one fails the import
from fastapi import FastAPI, Request
from fastapi.openapi.docs import (
    get_redoc_html,
    get_swagger_ui_html,
    get_swagger_ui_oauth2_redirect_html,
)
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

ASSETS_URL = "/docs-assets"
# Swagger UI would send the schema to validator.swagger.io for a badge; no network here.
_SWAGGER_PARAMETERS = {"validatorUrl": None}


def assets_dir() -> str:
    """The folder of the installed ``fastapi-offline`` package's Swagger UI and ReDoc files."""
    return str(files(fastapi_offline) / "static")


def add_docs(app: FastAPI, docs_url: str = "/docs", redoc_url: str = "/redoc") -> None:
    """Add the documentation pages and their assets to ``app``.

    Create ``app`` with ``docs_url=None, redoc_url=None``, so FastAPI's CDN pages are not
    there too. URLs are prefixed with the request's ``root_path``, as FastAPI's are, for a
    server behind a proxy at a sub-path.
    """
    app.mount(ASSETS_URL, StaticFiles(directory=assets_dir()), name="docs-assets")
    oauth2_redirect_url = f"{docs_url}/oauth2-redirect"

    @app.get(docs_url, include_in_schema=False)
    def swagger_ui(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_swagger_ui_html(
            openapi_url=f"{root}{app.openapi_url}", title=f"{app.title} - Swagger UI",
            oauth2_redirect_url=f"{root}{oauth2_redirect_url}",
            swagger_js_url=f"{root}{ASSETS_URL}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{ASSETS_URL}/swagger-ui.css",
            swagger_favicon_url=f"{root}{ASSETS_URL}/favicon.png",
            swagger_ui_parameters={**_SWAGGER_PARAMETERS, **(app.swagger_ui_parameters or {})},
        )

    @app.get(oauth2_redirect_url, include_in_schema=False)
    def swagger_ui_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    @app.get(redoc_url, include_in_schema=False)
    def redoc(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_redoc_html(
            openapi_url=f"{root}{app.openapi_url}", title=f"{app.title} - ReDoc",
            redoc_js_url=f"{root}{ASSETS_URL}/redoc.standalone.js",
            redoc_favicon_url=f"{root}{ASSETS_URL}/favicon.png", with_google_fonts=False,
        )


__all__ = ["ASSETS_URL", "add_docs", "assets_dir"]
