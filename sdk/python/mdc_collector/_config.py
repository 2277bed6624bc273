"""Where to send: the same environment variables the TypeScript client and the proxy read."""

import os
import re
import urllib.parse

_DEPLOYMENT_PATH = re.compile(r"/api/collect/[^/]+/[^/]+/?$")


def deployment_url(url=None, endpoint=None, deployment=None, env=None):
    """``<base>/api/collect/<endpoint>/<deployment>``, from a URL that is either that already or the
    collector's base URL (``MDC_URL``) completed with ``MDC_ENDPOINT`` and ``MDC_DEPLOYMENT``."""
    env = os.environ if env is None else env
    url = (url or env.get("MDC_URL") or "").strip()
    if not url:
        raise ValueError("no collector URL: pass url= or set MDC_URL")
    parsed = urllib.parse.urlparse(url)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise ValueError("collector URL %r is not an http(s) URL" % url)
    trimmed = url.rstrip("/")
    if _DEPLOYMENT_PATH.search(parsed.path):
        return trimmed
    endpoint = endpoint or env.get("MDC_ENDPOINT")
    deployment = deployment or env.get("MDC_DEPLOYMENT")
    if not endpoint or not deployment:
        raise ValueError(
            "collector URL %r names no deployment: use <base>/api/collect/<endpoint>/<deployment>, "
            "or set MDC_ENDPOINT and MDC_DEPLOYMENT" % url
        )
    quote = lambda s: urllib.parse.quote(s, safe="")  # noqa: E731
    return "%s/api/collect/%s/%s" % (trimmed, quote(endpoint), quote(deployment))
