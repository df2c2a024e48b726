// The one way the agent patches other people's code (lock libraries, worker pools, Node's
// request prototypes, the sync builtins, Web Locks). A wrapper keeps the `name` and `length` of
// what it replaces (async-lock reads a task's length to tell callbacks from promises) and carries
// it under the one ORIGINAL symbol; patching what is patched does nothing; each component undoes
// what it patched, and only where its patch is still in place; a property that cannot be replaced
// is reported through safety.ts and left as it was, never thrown into the host.
// Why not InstrumentationBase._wrap (shimmer), whose model this follows (a factory given the
// original, undone only if still in place): it keeps neither name nor length, wraps a wrapper
// again, and throws when a property cannot be redefined. So no instrumentation here calls it.
// Functions are installed by assignment: that keeps the property's attributes and goes through
// the setters of import-in-the-middle's ESM namespaces.
import { report } from './safety';

/** Where a wrapper keeps the function it stands for; Symbol.for, so two copies of the agent agree. */
export const ORIGINAL: unique symbol = Symbol.for('stallscope.original');

export type AnyFn = (...args: any[]) => any;
/** What can be wrapped: a function, or a class (a subclass stands in for it). */
export type Wrappable = AnyFn | (abstract new (...args: any[]) => unknown);

type Target = Record<PropertyKey, unknown>;

interface Entry {
  /** What was installed: a value (a function) or an accessor. */
  installed: PropertyDescriptor;
  /** The target's own property before, if it had one (else the property was inherited or absent). */
  before: PropertyDescriptor | undefined;
}

/** Every property patched, by target and key, whichever component patched it. */
const entries = new WeakMap<object, Map<PropertyKey, Entry>>();

/** The function a wrapper stands for; undefined for anything that is not a wrapper. */
export function originalOf<F>(fn: F): F | undefined {
  return typeof fn === 'function' ? ((fn as { [ORIGINAL]?: F })[ORIGINAL] ?? undefined) : undefined;
}

/**
 * Gives `replacement` the `name` and `length` of `original` and marks it as standing for it, for
 * a function value replaced outside a property (a module whose exports are the function, a
 * method of each object a library hands out). `copyProperties` also copies the original's own
 * enumerable properties (fs.realpathSync.native).
 */
export function shaped<F extends object>(replacement: F, original: object, copyProperties = false): F {
  if ((replacement as { [ORIGINAL]?: unknown })[ORIGINAL] === original) return replacement;
  const fn = original as { name: string; length: number };
  Object.defineProperty(replacement, 'name', { value: fn.name });
  Object.defineProperty(replacement, 'length', { value: fn.length });
  if (copyProperties) {
    for (const key of Object.keys(original)) (replacement as Target)[key] = (original as Target)[key];
  }
  Object.defineProperty(replacement, ORIGINAL, { value: original });
  return replacement;
}

export interface WrapOptions {
  /** Copy the original's own enumerable properties onto the wrapper. */
  copyProperties?: boolean;
  /** Told instead of safety.report when the patch fails, for a failure the caller expects. */
  failed?: (err: unknown) => void;
}

function isOurs(target: object, key: PropertyKey, entry: Entry): boolean {
  const { installed } = entry;
  if ('value' in installed) return (target as Target)[key] === installed.value;
  const now = Object.getOwnPropertyDescriptor(target, key);
  return now !== undefined && now.get === installed.get && now.set === installed.set;
}

function putBack(target: object, key: PropertyKey, before: PropertyDescriptor | undefined): void {
  if (!before) delete (target as Target)[key];
  else if (before.writable) (target as Target)[key] = before.value;
  else Object.defineProperty(target, key, before);
}

/** The patches one component made, undone together by restore(). */
export class Patches {
  private readonly done = new Map<object, Set<PropertyKey>>();

  /** `where` names the component in reports. */
  constructor(private readonly where: string) {}

  /** Properties this component has patched and not yet undone. */
  get size(): number {
    let n = 0;
    for (const keys of this.done.values()) n += keys.size;
    return n;
  }

  /**
   * Replaces the function `target[key]` (own or inherited) with `make(original)`, shaped like
   * it. Returns the wrapper in place (this one, or the one already there: wrapping twice does
   * not wrap again), or undefined when there is no function or it could not be replaced.
   */
  wrap<F extends Wrappable = AnyFn>(
    target: object,
    key: PropertyKey,
    make: (original: NoInfer<F>) => Wrappable,
    options: WrapOptions = {},
  ): NoInfer<F> | undefined {
    try {
      const t = target as Target;
      const original = t[key] as F;
      if (typeof original !== 'function') return undefined;
      const known = entries.get(target)?.get(key);
      if (known || originalOf(original))
        return (known && 'value' in known.installed ? known.installed.value : original) as F;
      const wrapper = shaped(make(original), original, options.copyProperties);
      const before = Object.getOwnPropertyDescriptor(target, key);
      t[key] = wrapper;
      if (t[key] !== wrapper) throw new TypeError(`${String(key)} did not take a replacement`);
      this.remember(target, key, { installed: { value: wrapper }, before });
      return wrapper as unknown as F;
    } catch (err) {
      if (options.failed) options.failed(err);
      else report(this.where, err);
      return undefined;
    }
  }

  /**
   * Defines `target[key]` (usually an accessor that sees the library assign it), remembering
   * what was there. Always configurable, so that it can be undone. Whether it is in place.
   */
  define(target: object, key: PropertyKey, descriptor: PropertyDescriptor): boolean {
    try {
      const known = entries.get(target)?.get(key);
      if (known) return isOurs(target, key, known);
      const before = Object.getOwnPropertyDescriptor(target, key);
      const installed = { ...descriptor, configurable: true };
      Object.defineProperty(target, key, installed);
      this.remember(target, key, { installed, before });
      return true;
    } catch (err) {
      report(this.where, err);
      return false;
    }
  }

  /** Puts back what wrap() or define() replaced at target[key], if that patch is still in place. */
  unwrap(target: object, key: PropertyKey): void {
    try {
      const map = entries.get(target);
      const entry = map?.get(key);
      if (!map || !entry) return;
      this.done.get(target)?.delete(key);
      // Another patch over ours: taking ours out would take theirs with it. It stays known, so
      // that patching again does not wrap a second time.
      if (!isOurs(target, key, entry)) return;
      putBack(target, key, entry.before);
      map.delete(key);
    } catch (err) {
      report(this.where, err);
    }
  }

  /** Undoes everything this component patched. */
  restore(): void {
    const done = [...this.done];
    this.done.clear();
    for (const [target, keys] of done) for (const key of keys) this.unwrap(target, key);
  }

  private remember(target: object, key: PropertyKey, entry: Entry): void {
    let map = entries.get(target);
    if (!map) entries.set(target, (map = new Map()));
    map.set(key, entry);
    let keys = this.done.get(target);
    if (!keys) this.done.set(target, (keys = new Set()));
    keys.add(key);
  }
}
