// healthy: the control. The same kinds of work as the other services, done right: a lock per
// account (so only requests for the same account queue), asynchronous file reads, a limiter with
// room to spare, and small JSON. Expected findings: none.
import fs from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import express from 'express';
import { Mutex } from 'async-mutex';
import pLimit from 'p-limit';
import { listen, sleep } from './serve.js';

const accountLocks = new Map();
const lockFor = (id) => accountLocks.get(id) ?? accountLocks.set(id, new Mutex()).get(id);
const balances = new Map();
const upstream = pLimit(8);

const app = express();
app.post('/deposit/:account', async (req, res) => {
  const balance = await lockFor(req.params.account).runExclusive(async () => {
    await sleep(5);
    const b = (balances.get(req.params.account) ?? 0) + 1;
    balances.set(req.params.account, b);
    return b;
  });
  res.json({ balance });
});
app.get('/readme', async (req, res) => res.type('text').send((await fs.readFile(fileURLToPath(import.meta.url), 'utf8')).slice(0, 200)));
app.get('/quote', async (req, res) => res.json(await upstream(async () => (await sleep(20), { price: 42 }))));

listen(app);
