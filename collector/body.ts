// Reads and inflates OTLP request bodies inside the memory budget: every byte held is taken from
// the request's claim before it is held, and nothing is ever held twice for long.
import type http from 'node:http';
import zlib from 'node:zlib';
import type { Claim } from './memory-budget';

/** 413: the body is over the size limit. */
export class BodyTooLarge extends Error {}

/** 400: the body could not be read or inflated. */
export class BodyUnreadable extends Error {}

/**
 * Reads the whole body. With a Content-Length everything is taken before the first byte is read:
 * the buffer, allocated once, the socket's chunks (garbage once copied, but held until V8
 * collects them) and, for a body decoded as it is, its decoding. Without one, the chunks are
 * taken as they come.
 */
export function readBody(
  req: http.IncomingMessage,
  limit: number,
  claim: Claim,
  decodedAsIs: boolean,
): Promise<Buffer> {
  const header = req.headers['content-length'];
  const declared = header === undefined ? NaN : Number(header);
  if (declared > limit) {
    return Promise.reject(new BodyTooLarge(`the body (${declared} bytes) exceeds the limit of ${limit} bytes`));
  }
  let into: Buffer | undefined;
  if (Number.isSafeInteger(declared)) {
    if (decodedAsIs) claim.reserveDecode(declared, 'decoding it');
    claim.take(2 * declared, 'its body');
    into = Buffer.allocUnsafe(declared);
  }
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let settled = false;
    const stop = (err: Error) => {
      if (settled) return;
      settled = true;
      req.removeAllListeners('data');
      // Whatever else arrives is discarded, not held.
      req.resume();
      reject(err);
    };
    req.on('data', (chunk: Buffer) => {
      if (!into && size + chunk.length > limit) {
        return stop(new BodyTooLarge(`the body exceeds the limit of ${limit} bytes`));
      }
      if (into) {
        // The HTTP parser never delivers more than Content-Length.
        chunk.copy(into, size);
        size += chunk.length;
        return;
      }
      try {
        claim.take(chunk.length, 'its body');
      } catch (err) {
        return stop(err as Error);
      }
      chunks.push(chunk);
      size += chunk.length;
    });
    req.on('end', () => {
      if (settled) return;
      settled = true;
      if (into) return resolve(into.subarray(0, size));
      if (chunks.length === 1) return resolve(chunks[0]);
      try {
        claim.take(size, 'its body');
      } catch (err) {
        return reject(err);
      }
      resolve(Buffer.concat(chunks, size));
    });
    req.on('error', (err) => stop(new BodyUnreadable(`could not read the body: ${err.message}`)));
    req.on('close', () => {
      if (!req.complete) stop(new BodyUnreadable('the client closed the connection before sending the whole body'));
    });
  });
}

/**
 * The inflated size a gzip body declares in its trailer (modulo 2^32, and only the last member's
 * for concatenated members), so a lower bound of the real size; undefined when not gzip.
 */
function declaredInflatedSize(raw: Buffer): number | undefined {
  if (raw.length < 18 || raw[0] !== 0x1f || raw[1] !== 0x8b) return undefined;
  return raw.readUInt32LE(raw.length - 4);
}

const MIN_CHUNK = 64 * 1024;

/**
 * Inflates a gzip body. The trailer's size refuses a body that says it is too large before any of
 * it is inflated, and is zlib's output chunk: an honest trailer gives one buffer, exactly the
 * body, which the decoder reads as it is. A trailer that lies costs chunks and a copy, all taken
 * from the claim as they appear.
 */
export function gunzipBody(raw: Buffer, limit: number, claim: Claim): Promise<Buffer> {
  const declared = declaredInflatedSize(raw);
  if (declared !== undefined && declared > limit) {
    return Promise.reject(
      new BodyTooLarge(`the body inflates to at least ${declared} bytes, over the limit of ${limit} bytes`),
    );
  }
  const chunkSize = Math.min(limit, Math.max(MIN_CHUNK, declared ?? 0));
  if (declared) claim.reserveDecode(declared, 'decoding it');
  claim.take(chunkSize, 'inflating its body');
  let taken = chunkSize;
  const chunks: Buffer[] = [];
  let size = 0;
  return new Promise((resolve, reject) => {
    const inflater = zlib.createGunzip({ chunkSize });
    let settled = false;
    const stop = (err: Error) => {
      if (settled) return;
      settled = true;
      inflater.destroy();
      reject(err);
    };
    inflater.on('data', (chunk: Buffer) => {
      if (settled) return;
      size += chunk.length;
      if (size > limit) return stop(new BodyTooLarge(`the decompressed body exceeds the limit of ${limit} bytes`));
      if (size > taken) {
        try {
          // Each further output buffer is as large as the first.
          claim.take(chunkSize, 'inflating its body');
        } catch (err) {
          return stop(err as Error);
        }
        taken += chunkSize;
      }
      chunks.push(chunk);
    });
    inflater.on('end', () => {
      if (settled) return;
      settled = true;
      if (chunks.length === 1) return resolve(chunks[0]);
      try {
        claim.take(size, 'inflating its body');
      } catch (err) {
        return reject(err);
      }
      resolve(Buffer.concat(chunks, size));
    });
    inflater.on('error', (err) => stop(new BodyUnreadable(`the body is not valid gzip: ${err.message}`)));
    inflater.end(raw);
  });
}
