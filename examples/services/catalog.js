// catalog: an express service that blocks its own event loop. Product ranking is a CPU loop run
// inside the request handler, and logins hash passwords with the synchronous pbkdf2Sync.
// Expected findings: loop-blocked (rankProducts) and sync-call (crypto.pbkdf2Sync in hashPassword).
const express = require('express');
const crypto = require('node:crypto');
const { listen } = require('./serve');

const products = Array.from({ length: 6000 }, (_, i) => ({ id: i, price: (i * 7919) % 1000, rating: (i * 104729) % 5 }));

function rankProducts(query) {
  // Scores every product against every other: quadratic, and all on the main thread.
  const scores = new Float64Array(products.length);
  // prettier-ignore
  for (let i = 0; i < products.length; i++) for (let j = 0; j < products.length; j++) scores[i] += Math.sqrt(products[j].price * products[i].rating + query.length); // MARK:rank-loop
  return products.map((p, i) => ({ id: p.id, score: scores[i] })).sort((a, b) => b.score - a.score).slice(0, 10);
}

function hashPassword(password, salt) {
  return crypto.pbkdf2Sync(password, salt, 200_000, 32, 'sha256'); // MARK:pbkdf2-sync
}

const app = express();
app.get('/search', (req, res) => res.json(rankProducts(String(req.query.q ?? ''))));
app.post('/login', (req, res) => res.json({ token: hashPassword('correct horse', 'pepper').toString('hex') }));
app.get('/product/:id', (req, res) => res.json(products[Number(req.params.id) % products.length]));

listen(app);
