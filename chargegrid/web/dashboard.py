"""The operators' dashboard: server-rendered pages, kept live by a small script over SSE.

Rules:
- Every page is complete HTML rendered by Jinja2 with autoescape on; the script
  (``static/dashboard.js``) only patches it. It changes cells in place from the events of
  ``/api/v1/events`` (connector badges, session power/energy/SoC, charger online state) and,
  for changes of structure (a session starts or ends, an unknown charger appears, the
  message log grows), fetches the same server-rendered rows from ``/fragments/...``. So all
  markup and all escaping stay in the templates.
- Nothing external loads (no CDN, no fonts): the Content-Security-Policy says ``'self'`` only,
  which also makes an injected inline script inert should escaping ever be missed.
- Sign-in is an API key in the HttpOnly, SameSite=Lax cookie ``chargegrid_key``, the cookie the
  HTTP API also accepts, so the page's EventSource and fetches are authorized by it.
  ``/login?key=KEY`` checks the key and sets it; pages without a valid cookie redirect to
  ``/login``; fragments answer 401 so the script can send the browser there.
- This package talks to the services only (``Platform``), never to another adapter.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

from fastapi import FastAPI, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, PackageLoader, StrictUndefined
from starlette.staticfiles import StaticFiles

from chargegrid import __version__
from chargegrid.core.model import Role
from chargegrid.services.platform import Platform
from chargegrid.web import views

COOKIE = "chargegrid_key"
# An operator's shift: long enough not to nag, short enough that a forgotten browser on a
# shared screen does not stay signed in for weeks.
COOKIE_MAX_AGE_S = 12 * 3600
EVENTS_URL = "/api/v1/events"
CHARGER_PARTS = {"connectors": "_connector_rows.html", "details": "_details.html"}

SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    # Pages show live state: a cached copy would be wrong the moment it is shown.
    "Cache-Control": "no-store",
}


def make_environment() -> Environment:
    """The template environment: package templates (found in wheels and editable installs
    alike), autoescape on for every template, and a loud error for a misspelt variable."""
    env = Environment(
        loader=PackageLoader("chargegrid.web", "templates"),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(views.FILTERS)
    env.globals["asset_version"] = __version__
    env.globals["events_url"] = EVENTS_URL
    return env


class _Dashboard:
    """The routes' shared state: the platform and the template environment."""

    def __init__(self, platform: Platform) -> None:
        self.p = platform
        self.env = make_environment()

    async def role(self, request: Request) -> Role | None:
        key = request.cookies.get(COOKIE)
        if not key:
            return None
        return await self.p.admin.role_for_key(key)

    def render(self, template: str, context: Mapping[str, Any], status_code: int = 200) -> HTMLResponse:
        html = self.env.get_template(template).render(**context)
        return HTMLResponse(html, status_code=status_code, headers=SECURITY_HEADERS)

    async def page(self, template: str, role: Role, nav: str, **context: Any) -> HTMLResponse:
        """A full page: adds what the header needs (counts, role, active nav entry)."""
        chargers = context.get("chargers")
        if chargers is None:
            chargers = await views.charger_views(self.p)
        return self.render(
            template,
            {"summary": views.summary(self.p, chargers), "role": role.value, "nav": nav, "page_charger": "",
             **context},
        )


def _to_login() -> RedirectResponse:
    return RedirectResponse("/login", status_code=303, headers={"Cache-Control": "no-store"})


def _unauthorized() -> Response:
    return Response(
        "sign in at /login", status_code=401, media_type="text/plain", headers={"Cache-Control": "no-store"}
    )


def mount_dashboard(app: FastAPI, platform: Platform) -> None:
    """Add the dashboard's pages, fragments and static files to ``app``."""
    d = _Dashboard(platform)
    app.mount("/static", StaticFiles(packages=[("chargegrid.web", "static")]), name="dashboard-static")

    # -- sign-in ----------------------------------------------------------------------------
    @app.get("/login", include_in_schema=False, response_model=None)
    async def login(request: Request, key: Annotated[str | None, Query(max_length=512)] = None) -> Response:
        if key is None:
            return d.render("login.html", {"error": None})
        key = key.strip()
        role = await platform.admin.role_for_key(key) if key else None
        if role is None:
            # 403 rather than 401: the form is the way in, not an HTTP authentication scheme.
            return d.render("login.html", {"error": "Unknown or revoked API key."}, status_code=403)
        response = RedirectResponse("/", status_code=303, headers={"Cache-Control": "no-store"})
        response.set_cookie(
            COOKIE, key, max_age=COOKIE_MAX_AGE_S, path="/", httponly=True, samesite="lax",
            secure=request.url.scheme == "https",
        )
        return response

    @app.get("/logout", include_in_schema=False)
    async def logout() -> RedirectResponse:
        response = _to_login()
        response.delete_cookie(COOKIE, path="/", httponly=True, samesite="lax")
        return response

    # -- pages ------------------------------------------------------------------------------
    @app.get("/", include_in_schema=False, response_model=None)
    async def chargers_page(request: Request) -> Response:
        role = await d.role(request)
        if role is None:
            return _to_login()
        return await d.page("chargers.html", role, "chargers", chargers=await views.charger_views(platform))

    @app.get("/sessions", include_in_schema=False, response_model=None)
    async def sessions_page(request: Request) -> Response:
        role = await d.role(request)
        if role is None:
            return _to_login()
        return await d.page(
            "sessions.html", role, "sessions",
            active=views.active_sessions(platform), completed=await views.completed_sessions(platform),
        )

    @app.get("/chargers/{charger_id}", include_in_schema=False, response_model=None)
    async def charger_page(request: Request, charger_id: str) -> Response:
        role = await d.role(request)
        if role is None:
            return _to_login()
        ch = await platform.chargers.get(charger_id)
        if ch is None:
            chargers = await views.charger_views(platform)
            return d.render(
                "not_found.html",
                {"summary": views.summary(platform, chargers), "role": role.value, "nav": "chargers",
                 "page_charger": "", "charger_id": charger_id},
                status_code=404,
            )
        return await d.page(
            "charger.html", role, "chargers",
            charger=views.charger_view(platform, ch),
            page_charger=charger_id,
            active=views.active_sessions(platform, charger_id),
            completed=await views.completed_sessions(platform, charger_id),
            log=views.message_log(platform, charger_id),
        )

    # -- fragments: the same rows, re-fetched by the script when structure changes ---------
    @app.get("/fragments/summary", include_in_schema=False, response_model=None)
    async def summary_fragment(request: Request) -> Response:
        if await d.role(request) is None:
            return _unauthorized()
        chargers = await views.charger_views(platform)
        return d.render("_summary.html", {"summary": views.summary(platform, chargers)})

    @app.get("/fragments/chargers", include_in_schema=False, response_model=None)
    async def chargers_fragment(request: Request) -> Response:
        if await d.role(request) is None:
            return _unauthorized()
        return d.render("_charger_rows.html", {"chargers": await views.charger_views(platform)})

    @app.get("/fragments/sessions", include_in_schema=False, response_model=None)
    async def sessions_fragment(
        request: Request,
        state: Annotated[str, Query(pattern="^(active|completed)$")] = "active",
        charger: str | None = None,
    ) -> Response:
        if await d.role(request) is None:
            return _unauthorized()
        charger = charger or None
        if state == "active":
            return d.render("_active_rows.html", {"active": views.active_sessions(platform, charger)})
        return d.render("_completed_rows.html", {"completed": await views.completed_sessions(platform, charger)})

    @app.get("/fragments/chargers/{charger_id}/log", include_in_schema=False, response_model=None)
    async def log_fragment(request: Request, charger_id: str) -> Response:
        if await d.role(request) is None:
            return _unauthorized()
        return d.render("_log_rows.html", {"log": views.message_log(platform, charger_id)})

    @app.get("/fragments/chargers/{charger_id}/{part}", include_in_schema=False, response_model=None)
    async def charger_fragment(request: Request, charger_id: str, part: str) -> Response:
        """The connectors or the details block of a charger's page."""
        if await d.role(request) is None:
            return _unauthorized()
        template = CHARGER_PARTS.get(part)
        ch = await platform.chargers.get(charger_id) if template else None
        if template is None or ch is None:
            return Response(status_code=404)
        return d.render(template, {"charger": views.charger_view(platform, ch)})
