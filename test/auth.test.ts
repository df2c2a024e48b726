// STALLSCOPE_TOKEN: the pages and APIs (and OTLP with --otlp-auth) require it, a browser signs in
// once, and the server refuses to listen beyond loopback without it.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import http from 'node:http';
import { join } from 'node:path';
import { startServer, type TestServer } from './helpers';

const TOKEN = 's3cret-token-of-some-length';
const CLI = join(__dirname, '..', 'cli', 'main.js');

let server: TestServer;
before(async () => {
  server = await startServer({ token: TOKEN, otlpAuth: true });
});
after(async () => {
  await server.close();
});

const spans = JSON.stringify({ resourceSpans: [] });

describe('dashboard and OTLP token', () => {
  it('refuses the APIs without the token, with a message that says what to send', async () => {
    const res = await fetch(`${server.api}/api/dash/locks`);
    assert.equal(res.status, 401);
    assert.match(((await res.json()) as { error: string }).error, /Authorization: Bearer/);
    const wrong = await fetch(`${server.api}/api/services`, { headers: { authorization: 'Bearer nope' } });
    assert.equal(wrong.status, 401);
    const right = await fetch(`${server.api}/api/services`, { headers: { authorization: `Bearer ${TOKEN}` } });
    assert.equal(right.status, 200);
    assert.equal((await fetch(`${server.api}/healthz`)).status, 200, 'health checks stay open');
  });

  it('sends a browser to sign in, then lets it in with a cookie', async () => {
    const page = await fetch(`${server.api}/locks`, { redirect: 'manual' });
    assert.equal(page.status, 303);
    assert.equal(page.headers.get('location'), '/login');
    const bad = await fetch(`${server.api}/login`, {
      method: 'POST',
      body: new URLSearchParams({ token: 'guess' }),
      redirect: 'manual',
    });
    assert.equal(bad.status, 401);
    const good = await fetch(`${server.api}/login`, {
      method: 'POST',
      body: new URLSearchParams({ token: TOKEN }),
      redirect: 'manual',
    });
    assert.equal(good.status, 303);
    const cookie = good.headers.get('set-cookie')!;
    assert.match(cookie, /HttpOnly/);
    assert.match(cookie, /SameSite=Strict/);
    assert.ok(!cookie.includes(TOKEN), 'the cookie carries a session value, not the token');
    const garbled = await fetch(`${server.api}/api/services`, { headers: { cookie: 'stallscope_token=%' } });
    assert.equal(garbled.status, 401);
    const inside = await fetch(`${server.api}/locks`, { headers: { cookie: cookie.split(';')[0] } });
    assert.equal(inside.status, 200);
    assert.match(await inside.text(), /<script type="module" src="\/locks.js">/);
  });

  it('requires the token on OTLP with --otlp-auth', async () => {
    const post = (headers: Record<string, string>) =>
      fetch(`${server.otlp}/v1/traces`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...headers },
        body: spans,
      });
    const denied = await post({});
    assert.equal(denied.status, 401);
    assert.match(JSON.stringify(await denied.json()), /Bearer/);
    assert.equal((await post({ authorization: `Bearer ${TOKEN}` })).status, 200);
  });

  it('without a token, answers only requests addressed to this machine', async () => {
    const open = await startServer();
    try {
      const local = await fetch(`${open.api}/api/services`);
      assert.equal(local.status, 200);
      // A page elsewhere that rebinds its own name to 127.0.0.1 still sends its own Host.
      const rebound = await new Promise<number>((resolve, reject) => {
        const req = http.get(`${open.api}/api/services`, { headers: { host: 'attacker.example:7318' } }, (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        });
        req.on('error', reject);
      });
      assert.equal(rebound, 403);
    } finally {
      await open.close();
    }
  });

  it('refuses sign-ins from an address after five wrong tokens, even the right one, for a minute', async () => {
    const limited = await startServer({ token: TOKEN });
    try {
      const login = (token: string) =>
        fetch(`${limited.api}/login`, { method: 'POST', body: new URLSearchParams({ token }), redirect: 'manual' });
      for (let i = 0; i < 5; i++) assert.equal((await login(`guess-${i}`)).status, 401);
      const refused = await login(TOKEN);
      assert.equal(refused.status, 429);
      const wait = Number(refused.headers.get('retry-after'));
      assert.ok(wait > 50 && wait <= 60, `Retry-After ${wait}`);
      assert.match(await refused.text(), /Too many wrong tokens; try again in \d+ s/);
      // Programs with the bearer token are not locked out by someone guessing at the form.
      const api = await fetch(`${limited.api}/api/services`, { headers: { authorization: `Bearer ${TOKEN}` } });
      assert.equal(api.status, 200);
    } finally {
      await limited.close();
    }
  });

  it('will not listen beyond loopback without a token, nor with a short one', () => {
    const env = { ...process.env, STALLSCOPE_TOKEN: '' };
    const r = spawnSync(process.execPath, [CLI, 'serve', '--host', '0.0.0.0', '--port', '0', '--otlp-port', '0'], {
      encoding: 'utf8',
      env,
      timeout: 20_000,
    });
    assert.equal(r.status, 2);
    assert.match(r.stderr, /--host 0\.0\.0\.0: listening beyond this machine needs STALLSCOPE_TOKEN/);
    const auth = spawnSync(process.execPath, [CLI, 'serve', '--otlp-auth', '--port', '0', '--otlp-port', '0'], {
      encoding: 'utf8',
      env,
      timeout: 20_000,
    });
    assert.equal(auth.status, 2);
    assert.match(auth.stderr, /--otlp-auth: needs STALLSCOPE_TOKEN/);
    const short = spawnSync(process.execPath, [CLI, 'serve', '--port', '0', '--otlp-port', '0'], {
      encoding: 'utf8',
      env: { ...env, STALLSCOPE_TOKEN: 'abc' },
      timeout: 20_000,
    });
    assert.equal(short.status, 2);
    assert.match(short.stderr, /STALLSCOPE_TOKEN: use at least 16 characters/);
  });
});
