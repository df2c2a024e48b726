// images: an express service that renders thumbnails in a Piscina worker pool with a single
// thread. Each upload asks for four sizes at once, so tasks queue for the one worker longer than
// they take to run (expected finding: pool-queueing).
const path = require('node:path');
const express = require('express');
const { Piscina } = require('piscina');
const { listen } = require('./serve');

const pool = new Piscina({ filename: path.join(__dirname, 'resize-worker.js'), minThreads: 1, maxThreads: 1 });

const app = express();
app.post('/upload', async (req, res) => {
  const sizes = await Promise.all([64, 256, 512, 1024].map((size) => pool.run({ size, ms: 10 })));
  res.json({ sizes });
});

listen(app);
