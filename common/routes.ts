// Naming a request's route the same way in the agent (the lean HTTP instrumentation's metric) and
// in the collector (the routes job, the Routes page): the method and the framework's route
// template, or, for a server without templates (plain node:http), the path with its ids folded
// (`/orders/:id`) so that routes stay few.

const ID_SEGMENT = /^(\d+|[0-9a-f]{8,}|[0-9a-f-]{36}|(?=.*\d)[A-Za-z0-9_-]{16,})$/i;

/** A URL path without its query, each segment that looks like an id as `:id`; '' for anything but a path. */
export function foldPath(target: string): string {
  const q = target.indexOf('?');
  const path = q >= 0 ? target.slice(0, q) : target;
  if (!path.startsWith('/')) return '';
  return path
    .split('/')
    .map((seg) => (ID_SEGMENT.test(seg) ? ':id' : seg))
    .join('/');
}

/** `GET /orders/:id`: how a route is shown and grouped. */
export function routeName(method: string, route: string): string {
  return method && route ? `${method} ${route}` : route || method;
}
