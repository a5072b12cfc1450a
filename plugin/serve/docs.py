"""``/docs`` (Swagger UI) and ``/redoc`` served from local files, so they render offline.

FastAPI's own pages load their JavaScript and CSS from a CDN; behind a firewall or on a plane they
stay blank. The assets come from the ``fastapi-offline`` package (Swagger UI and ReDoc bundles,
installed with ``lucerag[server]``) and are mounted at ``/docs-assets``; the pages are FastAPI's own
``get_swagger_ui_html``/``get_redoc_html`` pointed at them.
"""


from pathlib import Path  # (no `from __future__ import annotations`: FastAPI reads the routes' annotations)

ASSETS_URL = "/docs-assets"


def assets_dir() -> Path:
    """The folder holding swagger-ui-bundle.js, swagger-ui.css, redoc.standalone.js and favicon.png."""
    import fastapi_offline

    return Path(fastapi_offline.__file__).parent / "static"


def offline_docs(app, docs_url: str = "/docs", redoc_url: str = "/redoc") -> None:
    """Add the offline ``/docs`` and ``/redoc`` pages to ``app`` (created with ``docs_url=None,
    redoc_url=None``)."""
    from fastapi import Request
    from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
    from fastapi.staticfiles import StaticFiles

    app.mount(ASSETS_URL, StaticFiles(directory=str(assets_dir())), name="docs-assets")
    redirect = app.swagger_ui_oauth2_redirect_url

    @app.get(docs_url, include_in_schema=False)
    async def swagger(request: Request):
        root = request.scope.get("root_path", "")
        return get_swagger_ui_html(openapi_url=f"{root}{app.openapi_url}", title=f"{app.title} - Swagger UI",
                                   oauth2_redirect_url=redirect,
                                   swagger_js_url=f"{root}{ASSETS_URL}/swagger-ui-bundle.js",
                                   swagger_css_url=f"{root}{ASSETS_URL}/swagger-ui.css",
                                   swagger_favicon_url=f"{root}{ASSETS_URL}/favicon.png")

    if redirect:
        @app.get(redirect, include_in_schema=False)
        async def swagger_redirect():
            return get_swagger_ui_oauth2_redirect_html()

    @app.get(redoc_url, include_in_schema=False)
    async def redoc(request: Request):
        root = request.scope.get("root_path", "")
        return get_redoc_html(openapi_url=f"{root}{app.openapi_url}", title=f"{app.title} - ReDoc",
                              redoc_js_url=f"{root}{ASSETS_URL}/redoc.standalone.js",
                              redoc_favicon_url=f"{root}{ASSETS_URL}/favicon.png", with_google_fonts=False)
