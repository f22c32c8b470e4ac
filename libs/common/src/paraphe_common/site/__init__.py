"""The pages' shared layout: the French State design system (DSFR), French formats, CSRF guard.

``setup_site(app, "paraphe_<service>")`` gives a service aiohttp-jinja2 with its own
``templates/`` folder first, then the shared ``site/`` templates (``site/base.html``,
``site/macros.html``). The DSFR itself (``@gouvfr/dsfr``, installed by the build into
``web/node_modules``) is served by petition-catalog under ``/static/dsfr/``; every page of every
service links it from there, through the one browser origin of the proxy.

Pages carry no inline script or style (the Content-Security-Policy forbids them): a page's own
behaviour is a static file, added in the ``scripts`` block.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Final
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import aiohttp_jinja2
import jinja2
from aiohttp import web
from pydantic import AnyHttpUrl, field_validator
from pydantic_settings import SettingsConfigDict

from paraphe_common.problems import PROBLEM_PAGES, Problem, advice_for
from paraphe_common.settings import ENV_PREFIX, ThresholdSettings

DSFR_URL: Final = "/static/dsfr"
DEFAULT_PARLIAMENT: Final = "Assemblée nationale"

PARIS: Final = ZoneInfo("Europe/Paris")
MONTHS: Final = (
    "janvier", "février", "mars", "avril", "mai", "juin",
    "juillet", "août", "septembre", "octobre", "novembre", "décembre",
)  # fmt: skip
# French typography groups thousands with a narrow no-break space: « 100 000 ».
_THOUSANDS: Final = "\u202f"


# Where `make install` puts the DSFR's build in a working copy; an image sets PARAPHE_DSFR_DIR.
_WORKING_COPY_DSFR: Final = (
    Path(__file__).resolve().parents[5] / "web" / "node_modules" / "@gouvfr" / "dsfr" / "dist"
)


class SiteSettings(ThresholdSettings):
    """What a service serving pages needs: its public origin, and (the catalogue) the DSFR."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, frozen=True, extra="ignore")

    # The site's public URL: forms that change something must come from pages of this origin.
    public_url: AnyHttpUrl
    # The DSFR's dist/ folder, served under /static/dsfr/ by the catalogue.
    dsfr_dir: Path = _WORKING_COPY_DSFR
    # Where signature-intake answers inside the cluster: the petition page's sign form, posted
    # without JavaScript, is forwarded there with the signer's own token (petition-catalog).
    # Unset, that form asks for JavaScript.
    intake_url: AnyHttpUrl | None = None

    @field_validator("dsfr_dir")
    @classmethod
    def _holds_the_dsfr(cls, value: Path) -> Path:
        if not (value / "dsfr.min.css").is_file():
            raise ValueError(
                "no DSFR build (dsfr.min.css) in this folder: run `make install` (npm ci in web/)"
            )
        return value

    @property
    def public_origin(self) -> str:
        return origin_of(str(self.public_url))


def date_fr(moment: datetime | None) -> str:
    """« 1er décembre 2026 », in Europe/Paris; nothing for no date."""
    if moment is None:
        return ""
    local = moment.astimezone(PARIS)
    day = "1er" if local.day == 1 else str(local.day)
    return f"{day} {MONTHS[local.month - 1]} {local.year}"


def datetime_fr(moment: datetime | None) -> str:
    """« 1er décembre 2026 à 14 h 05 », in Europe/Paris."""
    if moment is None:
        return ""
    local = moment.astimezone(PARIS)
    return f"{date_fr(local)} à {local.hour} h {local.minute:02d}"


def number_fr(value: int) -> str:
    """« 100 000 »."""
    return f"{value:,}".replace(",", _THOUSANDS)


def origin_of(url: str) -> str:
    """``scheme://host[:port]`` of a URL, as a browser writes it in an Origin header."""
    parts = urlsplit(url)
    default = {"http": 80, "https": 443}.get(parts.scheme)
    port = f":{parts.port}" if parts.port and parts.port != default else ""
    return f"{parts.scheme}://{parts.hostname}{port}"


def require_same_origin(request: web.Request, public_origin: str) -> None:
    """Refuse a form post that did not come from one of the site's own pages (CSRF).

    The session cookies are SameSite=Lax already; this is the second lock, and the one that
    holds for older browsers: the Origin header (or, when a browser sends none, the Referer)
    must be the site's public origin.
    """
    offered = request.headers.get("Origin")
    if offered is None or offered == "null":
        referer = request.headers.get("Referer")
        offered = origin_of(referer) if referer else None
    if offered != public_origin:
        raise Problem(
            403,
            "Ce formulaire doit être envoyé depuis une page du site : rechargez la page et "
            "réessayez.",
            kind="cross-site-form",
        )


def setup_site(
    app: web.Application,
    package: str,
    *,
    parliament: str = DEFAULT_PARLIAMENT,
    filters: Mapping[str, Callable[..., str]] | None = None,
) -> jinja2.Environment:
    """aiohttp-jinja2 for ``package``: its ``templates/`` first, then the shared layout.

    No context processors: aiohttp-jinja2's middleware for them stores its state under a plain
    string key, which aiohttp warns about on every request; handlers pass what pages need.
    """
    site_filters: dict[str, Callable[..., str]] = {
        "date_fr": date_fr,
        "datetime_fr": datetime_fr,
        "number_fr": number_fr,
        **(filters or {}),
    }
    environment = aiohttp_jinja2.setup(
        app,
        loader=jinja2.ChoiceLoader(
            [
                jinja2.PackageLoader(package, "templates"),
                jinja2.PackageLoader("paraphe_common.site", "templates"),
            ]
        ),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        filters=site_filters,
        default_helpers=False,
    )
    environment.globals.update(parliament=parliament, dsfr=DSFR_URL)
    app[PROBLEM_PAGES] = problem_page
    return environment


def problem_page(
    request: web.Request,
    status: int,
    title: str,
    detail: str | None,
    headers: Mapping[str, str],
    *,
    template: str = "site/problem.html",
    **context: object,
) -> web.Response:
    """A failure said to a person in the site's layout (site/problem.html), or in a `template`
    extending it with its own `actions` and the `context` they read."""
    response = aiohttp_jinja2.render_template(
        template,
        request,
        {"status": status, "title": title, "detail": detail or advice_for(status), **context},
        status=status,
    )
    response.headers.update(headers)
    return response
