// wallet: an express service with two lock mistakes, both with async-mutex.
// - One mutex guards two unrelated things, the balances and the order-number counter, so
//   transfers and order numbers queue behind each other (expected finding: shared-lock).
// - Statements take a lock and return early on a validation error without releasing it; from
//   then on every statement request waits forever (expected finding: lock-held).
const express = require('express');
const { Mutex } = require('async-mutex');
const { listen, sleep } = require('./serve');

const ledgerLock = new Mutex(); // MARK:ledger-lock
const statementLock = new Mutex(); // MARK:statement-lock
const balances = new Map([['alice', 1000], ['bob', 1000]]);
let nextOrder = 1;
let statements = 0;

async function transfer(from, to, amount) {
  const release = await ledgerLock.acquire(); // MARK:transfer-acquire
  try {
    const balance = balances.get(from);
    await sleep(25); // the database write
    balances.set(from, balance - amount);
    balances.set(to, balances.get(to) + amount);
  } finally {
    release();
  }
}

async function orderNumber() {
  return ledgerLock.runExclusive(async () => { // MARK:order-acquire
    await sleep(25); // persisting the counter
    return nextOrder++;
  });
}

async function statement(month) {
  const release = await statementLock.acquire(); // MARK:statement-acquire
  statements++;
  if (statements % 5 === 0 || month > 12) return null; // the bug: returns without release()
  await sleep(10);
  release();
  return { month, lines: 3 };
}

const app = express();
app.post('/transfer', async (req, res) => {
  await transfer('alice', 'bob', 1);
  res.json({ ok: true });
});
app.post('/orders', async (req, res) => res.json({ order: await orderNumber() }));
app.get('/statement', async (req, res) => {
  const s = await statement(Number(req.query.month ?? 1));
  if (!s) return res.status(400).json({ error: 'no statement for that month' });
  res.json(s);
});

listen(app);
