import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';

/** Starts listening; a port in use or a bad host becomes one clear message naming the flag. */
export function listen(server: Server, port: number, host: string, flag: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const onError = (err: NodeJS.ErrnoException) => {
      server.off('listening', onListening);
      if (err.code === 'EADDRINUSE') reject(new Error(`port ${port} on ${host} is already in use (${flag})`));
      else if (err.code === 'EACCES') reject(new Error(`no permission to listen on port ${port} (${flag})`));
      else if (err.code === 'EADDRNOTAVAIL' || err.code === 'ENOTFOUND')
        reject(new Error(`cannot listen on host ${host}: ${err.code} (--host)`));
      else reject(new Error(`cannot listen on ${host}:${port} (${flag}): ${err.message}`));
    };
    const onListening = () => {
      server.off('error', onError);
      resolve((server.address() as AddressInfo).port);
    };
    server.once('error', onError);
    server.once('listening', onListening);
    server.listen(port, host);
  });
}

/**
 * Stops accepting connections, closes idle keep-alive ones, and gives requests in flight
 * `graceMs` to finish before their connections are cut (a client that never finishes sending
 * must not hold the server open).
 */
export function closeServer(server: Server, graceMs = 2000): Promise<void> {
  return new Promise((resolve) => {
    if (!server.listening) return resolve();
    const cut = setTimeout(() => server.closeAllConnections(), graceMs);
    server.close(() => {
      clearTimeout(cut);
      resolve();
    });
    server.closeIdleConnections();
  });
}

/** Whether a host name or address (a bind address or a Host header's name) is this machine only. */
export function isLoopbackHost(host: string): boolean {
  const h = host.toLowerCase().replace(/^\[(.*)\]$/, '$1');
  return h === 'localhost' || h === '::1' || /^127\.\d+\.\d+\.\d+$/.test(h);
}

/** Whether a request's Host header names this machine (a page elsewhere sends its own name). */
export function hostHeaderIsLoopback(header: string | undefined): boolean {
  const host = (header ?? '').trim();
  const name = host.startsWith('[') ? host.slice(0, host.indexOf(']') + 1) : host.replace(/:\d*$/, '');
  return name !== '' && isLoopbackHost(name);
}
