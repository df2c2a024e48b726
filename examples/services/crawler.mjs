// crawler: an express service that fetches each site's pages through a p-limit limiter of two
// slots, three pages at a time, and signs the result with eight crypto.pbkdf2 calls at once,
// twice the libuv threadpool's four threads.
// Expected findings: lock-contention on the limiter (fetches queue for its two slots) and
// threadpool-saturated (dns.lookup and the later hashes wait behind the hashes ahead of them).
import dns from 'node:dns/promises';
import crypto from 'node:crypto';
import { promisify } from 'node:util';
import express from 'express';
import pLimit from 'p-limit';
import { listen, sleep } from './serve.js';

const fetchLimit = pLimit(2); // MARK:fetch-limit
const pbkdf2 = promisify(crypto.pbkdf2);

function signPage(body) {
  return Promise.all(Array.from({ length: 8 }, (_, i) => pbkdf2(body, `salt-${i}`, 60_000, 32, 'sha256'))); // MARK:sign-page
}

const app = express();
app.get('/crawl', async (req, res) => {
  const signing = signPage(`page ${req.query.url}`);
  const { address } = await dns.lookup('localhost'); // MARK:dns-lookup
  const pages = await Promise.all(
    ['/', '/about', '/blog'].map((page) =>
      fetchLimit(async () => {
        await sleep(150); // the remote site answering
        return `<html>${address}${page}</html>`;
      }),
    ),
  );
  await signing;
  res.json({ pages: pages.length });
});

listen(app);
