// Posts one gzipped pprof to the collector, from the watchdog thread. One request at a time, each
// bounded by the OTLP timeout; a failure rejects with a message that names the target.
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import type { OtlpTarget } from './config';

/** What of an error answer is kept for the warning. */
const MAX_ERROR_TEXT = 200;

export function postProfile(target: OtlpTarget, body: Uint8Array): Promise<void> {
  return new Promise((resolve, reject) => {
    const url = new URL(target.url);
    const send = url.protocol === 'https:' ? httpsRequest : httpRequest;
    const req = send(
      url,
      {
        method: 'POST',
        headers: {
          ...target.headers,
          'content-type': 'application/octet-stream',
          'content-length': body.length,
        },
      },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => {
          if (text.length < MAX_ERROR_TEXT) text += d;
        });
        res.on('end', () => {
          const status = res.statusCode ?? 0;
          if (status >= 200 && status < 300) resolve();
          else reject(new Error(`${target.url} answered ${status}: ${text.slice(0, MAX_ERROR_TEXT).trim()}`));
        });
        res.on('error', reject);
      },
    );
    // The whole exchange is bounded, not only the socket's silences.
    const timer = setTimeout(() => req.destroy(new Error(`no answer within ${target.timeoutMs} ms`)), target.timeoutMs);
    req.on('close', () => clearTimeout(timer));
    req.on('error', (err) => reject(new Error(`${target.url}: ${err.message}`)));
    req.end(body);
  });
}
