// A full garbage collection from inside a test, for tests that check what the agent lets go.
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

setFlagsFromString('--expose-gc');
const collect = runInNewContext('gc') as () => void;

/** Collects until nothing more goes (finalizers and weak references settle over a few turns). */
export async function fullGc(): Promise<void> {
  for (let i = 0; i < 4; i++) {
    collect();
    await new Promise((r) => setImmediate(r));
  }
}
