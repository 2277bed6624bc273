/**
 * Route templates as the Functions host reads them: `collect/{endpoint}/{deployment}`, optional `{name?}`,
 * catch-all `{*rest}`, and constraints such as `{id:int}` (accepted, not enforced). Literal segments match
 * without regard to case, and a literal beats a parameter, as in ASP.NET routing.
 */

type Segment =
  | { kind: 'literal'; text: string }
  | { kind: 'param'; name: string; optional: boolean }
  | { kind: 'catchAll'; name: string };

export interface Route {
  readonly template: string;
  readonly segments: readonly Segment[];
}

export class RouteTemplateError extends Error {
  readonly code = 'InvalidRouteTemplate';
}

export function parseRoute(template: string): Route {
  const parts = template.replace(/^\/+|\/+$/g, '').split('/').filter((p) => p !== '');
  const segments = parts.map((part, index): Segment => {
    const param = /^\{(\*)?([A-Za-z_][A-Za-z0-9_]*)(?::[^}?]*)?(\?)?\}$/.exec(part);
    if (!param) {
      if (/[{}]/.test(part)) throw new RouteTemplateError(`route "${template}": segment "${part}" is not supported`);
      return { kind: 'literal', text: part.toLowerCase() };
    }
    const [, star, name, optional] = param;
    if (star) {
      if (index !== parts.length - 1) throw new RouteTemplateError(`route "${template}": {*${name}} must be last`);
      return { kind: 'catchAll', name: name! };
    }
    return { kind: 'param', name: name!, optional: optional === '?' };
  });
  return { template, segments };
}

/** The route's parameters when `path` (without `/api`, undecoded) matches it, else undefined. */
export function matchRoute(route: Route, path: string): Record<string, string> | undefined {
  const parts = path.replace(/^\/+|\/+$/g, '').split('/').filter((p) => p !== '');
  const params: Record<string, string> = {};
  let i = 0;
  for (const segment of route.segments) {
    if (segment.kind === 'catchAll') {
      const rest = parts.slice(i).map(decode);
      if (rest.some((p) => p === undefined)) return undefined;
      if (rest.length > 0) params[segment.name] = rest.join('/');
      return params;
    }
    const part = parts[i];
    if (part === undefined) {
      if (segment.kind === 'param' && segment.optional) continue;
      return undefined;
    }
    const text = decode(part);
    if (text === undefined) return undefined;
    if (segment.kind === 'literal') {
      if (text.toLowerCase() !== segment.text) return undefined;
    } else {
      params[segment.name] = text;
    }
    i++;
  }
  return i === parts.length ? params : undefined;
}

function decode(part: string): string | undefined {
  try {
    return decodeURIComponent(part);
  } catch {
    return undefined;
  }
}

/** Sorts routes so that the most specific is tried first: literals, then parameters, then catch-alls. */
export function byPrecedence(a: Route, b: Route): number {
  const rank = (s: Segment | undefined) =>
    s === undefined ? 4 : s.kind === 'literal' ? 0 : s.kind === 'param' ? (s.optional ? 2 : 1) : 3;
  const length = Math.max(a.segments.length, b.segments.length);
  for (let i = 0; i < length; i++) {
    const diff = rank(a.segments[i]) - rank(b.segments[i]);
    if (diff !== 0) return diff;
  }
  return 0;
}
