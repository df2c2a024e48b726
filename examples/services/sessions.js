// sessions: an express service that keeps sessions in one store guarded by async-lock. Every
// session update takes the same key and holds it across the slow store write, so concurrent
// requests queue on it (expected finding: lock-contention).
const express = require('express');
const AsyncLock = require('async-lock');
const { listen, sleep } = require('./serve');

const lock = new AsyncLock();
const sessions = new Map();

async function touchSession(id) {
  return lock.acquire('session-store', async () => { // MARK:session-acquire
    const s = sessions.get(id) ?? { id, hits: 0 };
    s.hits++;
    await sleep(40); // writing the whole store back to disk
    sessions.set(id, s);
    return s;
  });
}

const app = express();
app.get('/session/:id', async (req, res) => res.json(await touchSession(req.params.id)));

listen(app);
