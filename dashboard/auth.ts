// A shared token for the pages and APIs when the dashboard listens beyond loopback: sent as
// `Authorization: Bearer <token>` by programs, or kept in a cookie that /login sets for a browser.
import { createHmac } from 'node:crypto';
import express, { type Request, type RequestHandler } from 'express';
import { sameSecret as same } from '../common/secret';

const COOKIE = 'stallscope_token';

/** Wrong tokens one address may try per window before /login refuses it for the rest of it. */
export const LOGIN_ATTEMPTS = 5;
export const LOGIN_WINDOW_MS = 60_000;
/** Addresses remembered at most; past it the oldest are forgotten. */
const MAX_TRACKED = 10_000;

/** Failed sign-ins per client address in fixed windows: a token cannot be guessed at speed. */
class LoginLimiter {
  private readonly failures = new Map<string, { count: number; until: number }>();

  /** Seconds until the address may try again, or 0 when it may now. */
  blockedFor(address: string, now = Date.now()): number {
    const f = this.failures.get(address);
    if (!f || now >= f.until) return 0;
    return f.count >= LOGIN_ATTEMPTS ? Math.ceil((f.until - now) / 1000) : 0;
  }

  fail(address: string, now = Date.now()): void {
    let f = this.failures.get(address);
    if (!f || now >= f.until) {
      if (this.failures.size >= MAX_TRACKED) this.failures.delete(this.failures.keys().next().value!);
      f = { count: 0, until: now + LOGIN_WINDOW_MS };
      this.failures.delete(address);
      this.failures.set(address, f);
    }
    f.count++;
  }

  succeed(address: string): void {
    this.failures.delete(address);
  }
}

/**
 * The cookie carries a value derived from the token, not the token: cookies are shared by every
 * port of a host, and the token may also open the OTLP port.
 */
function session(token: string): string {
  return createHmac('sha256', token).update('stallscope dashboard session').digest('base64url');
}

function cookie(req: Request): string | undefined {
  for (const part of (req.get('cookie') ?? '').split(';')) {
    const [name, ...value] = part.trim().split('=');
    if (name === COOKIE) return value.join('=');
  }
  return undefined;
}

/** A bearer header with the token, or the sign-in cookie (a proxy may add a bearer of its own). */
function allowed(req: Request, token: string, sessionValue: string): boolean {
  const auth = req.get('authorization');
  if (auth?.startsWith('Bearer ') && same(auth.slice(7).trim(), token)) return true;
  const c = cookie(req);
  return c !== undefined && same(c, sessionValue);
}

const LOGIN_PAGE = `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>stallscope: sign in</title>
<link rel="stylesheet" href="/login.css"></head><body><main class="login"><h1>stallscope</h1>
<form method="post" action="/login"><label>Token <input type="password" name="token" autocomplete="current-password" autofocus></label>
<button type="submit">Sign in</button></form><p>The token is the value of STALLSCOPE_TOKEN where stallscope runs.</p></main></body></html>`;

export function requireToken(token: string): RequestHandler {
  const router = express.Router();
  const sessionValue = session(token);
  const limiter = new LoginLimiter();
  router.get('/login.css', (_req, res) =>
    res
      .type('css')
      .send(
        'body{font:15px system-ui,sans-serif;display:grid;place-items:center;height:100vh;margin:0}form{display:flex;gap:.5em}',
      ),
  );
  router.get('/login', (_req, res) => res.type('html').send(LOGIN_PAGE));
  router.post('/login', express.urlencoded({ extended: false, limit: '4kb' }), (req, res) => {
    const address = req.socket.remoteAddress ?? '';
    const wait = limiter.blockedFor(address);
    if (wait > 0) {
      // Even the right token waits: otherwise the answer would still tell a guess apart.
      res
        .status(429)
        .set('Retry-After', String(wait))
        .type('html')
        .send(LOGIN_PAGE.replace('<form', `<p role="alert">Too many wrong tokens; try again in ${wait} s.</p><form`));
      return;
    }
    const given = typeof req.body?.token === 'string' ? req.body.token : '';
    if (!same(given, token)) {
      limiter.fail(address);
      res
        .status(401)
        .type('html')
        .send(LOGIN_PAGE.replace('<form', '<p role="alert">That token is not right.</p><form'));
      return;
    }
    limiter.succeed(address);
    res.cookie(COOKIE, sessionValue, { httpOnly: true, sameSite: 'strict', path: '/', secure: req.secure });
    res.redirect(303, '/');
  });
  router.use((req, res, next) => {
    if (allowed(req, token, sessionValue)) return next();
    if (req.path.startsWith('/api/'))
      res.status(401).json({ error: 'a token is required: Authorization: Bearer <STALLSCOPE_TOKEN>' });
    else res.redirect(303, '/login');
  });
  return router;
}
