// What the benchmarks that load a service share: starting it (it prints {"port": n} first), its
// CPU time from /proc, a bounded closed-loop load on loopback (autocannon: each connection sends
// its next request when the answer is in), and medians.
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import autocannon from 'autocannon';

export interface Service {
  args: string[];
  env: Record<string, string>;
}

export function startService(s: Service, script: string[], env: NodeJS.ProcessEnv): ChildProcess {
  return spawn(process.execPath, [...s.args, ...script], {
    env: { ...env, ...s.env },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
}

export function firstLine(child: ChildProcess): Promise<string> {
  return new Promise((resolve, reject) => {
    let out = '';
    child.stdout!.on('data', (d) => {
      out += d;
      if (out.includes('\n')) resolve(out.split('\n')[0]);
    });
    child.once('exit', (code) => reject(new Error(`exited with ${code} before printing`)));
  });
}

/** CPU seconds (user + system) the process has used so far, from /proc (clock ticks of 10 ms). */
export function cpuSeconds(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

export interface LoadResult {
  rps: number;
  p99: number;
  cpuUs: number;
}

/**
 * Starts the service, warms it (JIT, lazy paths; a second unless told), then loads `path` for `seconds`
 * with `connections` closed-loop connections; every answer must be a 2xx.
 */
export async function loadService(
  name: string,
  s: Service,
  script: string[],
  env: NodeJS.ProcessEnv,
  o: { path: string; connections: number; seconds: number; warmupSeconds?: number },
): Promise<LoadResult> {
  const child = startService(s, script, env);
  try {
    const { port } = JSON.parse(await firstLine(child)) as { port: number };
    const url = `http://127.0.0.1:${port}${o.path}`;
    await autocannon({ url, connections: o.connections, duration: o.warmupSeconds ?? 1 });
    const cpuBefore = cpuSeconds(child.pid!);
    const r = await autocannon({ url, connections: o.connections, duration: o.seconds });
    const cpu = cpuSeconds(child.pid!) - cpuBefore;
    if (r.non2xx > 0 || r.errors > 0) throw new Error(`${name}: ${r.non2xx} non-2xx answers, ${r.errors} errors`);
    // CPU per request is steadier than throughput on a 2-core machine shared with the load generator.
    return { rps: r.requests.average, p99: r.latency.p99, cpuUs: (cpu / r.requests.total) * 1e6 };
  } finally {
    child.kill('SIGTERM');
    await new Promise((r) => child.once('exit', r));
  }
}

export const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
