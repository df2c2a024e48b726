// A shared token for the pages and APIs when the dashboard listens beyond loopback: sent as
// `Authorization: Bearer <token>` by programs, or kept in a cookie that /login sets for a browser.
import { timingSafeEqual } from 'node:crypto';
import express, { type Request, type RequestHandler } from 'express';

const COOKIE = 'stallscope_token';

function same(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

function presented(req: Request): string | undefined {
  const auth = req.get('authorization');
  if (auth?.startsWith('Bearer ')) return auth.slice(7).trim();
  for (const part of (req.get('cookie') ?? '').split(';')) {
    const [name, ...value] = part.trim().split('=');
    if (name === COOKIE) return decodeURIComponent(value.join('='));
  }
  return undefined;
}

const LOGIN_PAGE = `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>stallscope: sign in</title>
<link rel="stylesheet" href="/login.css"></head><body><main class="login"><h1>stallscope</h1>
<form method="post" action="/login"><label>Token <input type="password" name="token" autocomplete="current-password" autofocus></label>
<button type="submit">Sign in</button></form><p>The token is the value of STALLSCOPE_TOKEN where stallscope runs.</p></main></body></html>`;

export function requireToken(token: string): RequestHandler {
  const router = express.Router();
  router.get('/login.css', (_req, res) => res.type('css').send('body{font:15px system-ui,sans-serif;display:grid;place-items:center;height:100vh;margin:0}form{display:flex;gap:.5em}'));
  router.get('/login', (_req, res) => res.type('html').send(LOGIN_PAGE));
  router.post('/login', express.urlencoded({ extended: false, limit: '4kb' }), (req, res) => {
    const given = typeof req.body?.token === 'string' ? req.body.token : '';
    if (!same(given, token)) {
      res.status(401).type('html').send(LOGIN_PAGE.replace('<form', '<p role="alert">That token is not right.</p><form'));
      return;
    }
    res.cookie(COOKIE, given, { httpOnly: true, sameSite: 'strict', path: '/' });
    res.redirect(303, '/');
  });
  router.use((req, res, next) => {
    const given = presented(req);
    if (given !== undefined && same(given, token)) return next();
    if (req.path.startsWith('/api/')) res.status(401).json({ error: 'a token is required: Authorization: Bearer <STALLSCOPE_TOKEN>' });
    else res.redirect(303, '/login');
  });
  return router;
}
