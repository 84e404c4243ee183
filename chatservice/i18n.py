"""Languages of the pages people read: the donor page, the widget, the staff console and the unsubscribe
page. English and Bengali (locale/); the reader's language is the widget's `data-locale` (passed to the
embed page as `?locale=`), else their browser's Accept-Language.

The API keeps English: its error `code`s are the contract and its `detail` texts are for developers, so an
API request is never translated, whatever its Accept-Language.
"""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse
from django.utils import translation
from django.utils.cache import patch_vary_headers
from django.views.decorators.http import require_GET
from django.views.i18n import JavaScriptCatalog

from chatservice.errors import HTML_ERROR_PATH_PREFIXES

# Pages whose text is translated; the JavaScript catalog names its language in its path.
TRANSLATED_PATH_PREFIXES = HTML_ERROR_PATH_PREFIXES
TRANSLATED_PATHS = frozenset({"/"})  # the landing page
LOCALE_PARAMETER = "locale"
# The catalog of a language changes with a release only: host pages and browsers may keep it a while.
CATALOG_MAX_AGE_S = 300


def supported(code: str | None) -> str | None:
    """The supported language for a code such as "bn-BD" or "es", or None."""
    if not code:
        return None
    try:
        return translation.get_supported_language_variant(code.strip().lower().replace("_", "-"))
    except LookupError:
        return None


def language_for(request: HttpRequest) -> str:
    return supported(request.GET.get(LOCALE_PARAMETER)) or translation.get_language_from_request(request)


class PageLanguageMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.path not in TRANSLATED_PATHS and not request.path.startswith(TRANSLATED_PATH_PREFIXES):
            return self.get_response(request)
        language = language_for(request)
        with translation.override(language):
            request.LANGUAGE_CODE = language
            response = self.get_response(request)
        patch_vary_headers(response, ("Accept-Language",))
        response.headers.setdefault("Content-Language", language)
        return response


# No packages: Django then reads every installed app's catalog and LOCALE_PATHS (locale/, ours).
_catalog = JavaScriptCatalog.as_view()


@require_GET
def javascript_catalog(request: HttpRequest, language: str) -> HttpResponse:
    """Django's JavaScript catalog (gettext, ngettext, interpolate) for one language, named in the path so
    that a page loads the catalog of the language it was rendered in."""
    if language not in dict(settings.LANGUAGES):
        raise Http404("No such language.")
    with translation.override(language):
        response = _catalog(request)
    response["Cache-Control"] = f"public, max-age={CATALOG_MAX_AGE_S}"
    response["Content-Language"] = language
    return response
