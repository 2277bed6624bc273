/** Environment variables every client reads when an option is not given (the Python module reads the same). */
export const envNames = { url: 'MDC_URL', key: 'MDC_KEY', endpoint: 'MDC_ENDPOINT', deployment: 'MDC_DEPLOYMENT' } as const;

const deploymentPath = /\/api\/collect\/[^/]+\/[^/]+\/?$/;

/**
 * The collect URL of one deployment, `<base>/api/collect/<endpoint>/<deployment>`. `url` is either that URL
 * already, or the collector's base URL (`http://127.0.0.1:7071`) completed with `endpoint` and `deployment`.
 */
export function deploymentUrl(
  options: { url?: string; endpoint?: string; deployment?: string },
  env: Record<string, string | undefined> = process.env,
): string {
  const url = (options.url ?? env[envNames.url])?.trim();
  if (!url) throw new TypeError(`no collector URL: pass url or set ${envNames.url}`);
  let base: URL;
  try {
    base = new URL(url);
  } catch {
    throw new TypeError(`collector URL "${url}" is not a URL`);
  }
  if (base.protocol !== 'http:' && base.protocol !== 'https:') throw new TypeError(`collector URL "${url}" is not http(s)`);
  const trimmed = url.replace(/\/+$/, '');
  if (deploymentPath.test(base.pathname)) return trimmed;
  const endpoint = options.endpoint ?? env[envNames.endpoint];
  const deployment = options.deployment ?? env[envNames.deployment];
  if (!endpoint || !deployment) {
    throw new TypeError(
      `collector URL "${url}" names no deployment: use <base>/api/collect/<endpoint>/<deployment>, or pass endpoint and deployment (${envNames.endpoint}, ${envNames.deployment})`,
    );
  }
  return `${trimmed}/api/collect/${encodeURIComponent(endpoint)}/${encodeURIComponent(deployment)}`;
}
