// agent/patch.ts on plain objects, classes and Node's own modules: wrappers look like what they
// replace, patching twice wraps once, restoring puts back the very same function and property,
// and a property that cannot be replaced is reported (a process warning) and left as it was.
import { afterEach, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { ORIGINAL, originalOf, Patches, shaped } from '../agent/patch';

/** The stallscope warnings emitted while `fn` runs (they arrive on a later tick). */
async function warningsDuring(fn: () => void): Promise<string[]> {
  const seen: string[] = [];
  const listener = (w: Error & { code?: string }) => {
    if (w.code === 'STALLSCOPE') seen.push(w.message);
  };
  process.on('warning', listener);
  try {
    fn();
    await new Promise((resolve) => setImmediate(resolve));
  } finally {
    process.off('warning', listener);
  }
  return seen;
}

function add(a: number, b: number): number {
  return a + b;
}

let patches = new Patches('patch test');
afterEach(() => {
  patches.restore();
  patches = new Patches('patch test');
});

describe('Patches.wrap', () => {
  it('keeps name and length, passes this, arguments, result and errors, and links to the original', () => {
    const target = {
      base: 10,
      add,
      fail(message: string): never {
        throw new Error(message);
      },
    };
    const calls: unknown[][] = [];
    const wrapper = patches.wrap(
      target,
      'add',
      (original) =>
        function (this: unknown, ...args: unknown[]) {
          calls.push(args);
          return Reflect.apply(original, this, args);
        },
    );
    assert.equal(target.add, wrapper);
    assert.notEqual(target.add, add);
    assert.equal(target.add.name, 'add');
    assert.equal(target.add.length, 2);
    assert.equal(originalOf(target.add), add);
    assert.equal((target.add as { [ORIGINAL]?: unknown })[ORIGINAL], add);
    assert.equal(target.add(2, 3), 5);
    assert.deepEqual(calls, [[2, 3]]);

    patches.wrap(
      target,
      'fail',
      (original) =>
        function (this: unknown) {
          return Reflect.apply(original, this, arguments);
        },
    );
    assert.equal(target.fail.length, 1);
    assert.throws(() => target.fail('boom'), /boom/);
  });

  it('wraps once however often it is asked, even by another component', () => {
    const target = { add };
    let made = 0;
    const make = (original: typeof add) => {
      made++;
      return function (this: unknown, a: number, b: number) {
        return original.call(this, a, b) * 10;
      };
    };
    const first = patches.wrap(target, 'add', make);
    const second = patches.wrap(target, 'add', make);
    const other = new Patches('another component');
    const third = other.wrap(target, 'add', make);
    assert.equal(made, 1);
    assert.equal(first, second);
    assert.equal(first, third);
    assert.equal(target.add(1, 2), 30, 'one layer of wrapping');
    // The other component patched nothing, so its restore leaves this one's patch in place.
    other.restore();
    assert.equal(target.add, first);
    assert.equal(patches.size, 1);
    assert.equal(other.size, 0);
  });

  it('restores the exact original and its property attributes, and can patch again afterwards', () => {
    const target: Record<string, unknown> = {};
    Object.defineProperty(target, 'hidden', { value: add, writable: true, enumerable: false, configurable: true });
    const before = Object.getOwnPropertyDescriptor(target, 'hidden');
    patches.wrap(target, 'hidden', (original) => (a: number, b: number) => original(a, b));
    assert.equal(Object.getOwnPropertyDescriptor(target, 'hidden')!.enumerable, false, 'attributes kept');
    assert.notEqual(target.hidden, add);
    patches.restore();
    assert.equal(target.hidden, add);
    assert.deepEqual(Object.getOwnPropertyDescriptor(target, 'hidden'), before);
    assert.equal(patches.size, 0);
    assert.ok(patches.wrap(target, 'hidden', (original) => (a: number, b: number) => original(a, b)));
    assert.notEqual(target.hidden, add);
  });

  it('patches a prototype for every instance, and takes an inherited method back off the subclass', () => {
    class Account {
      constructor(public balance: number) {}
      deposit(amount: number): number {
        this.balance += amount;
        return this.balance;
      }
    }
    class Savings extends Account {}
    const deposit = Account.prototype.deposit;
    const seen: number[] = [];
    patches.wrap(
      Savings.prototype,
      'deposit',
      (original) =>
        function (this: Account, amount: number) {
          seen.push(amount);
          return original.call(this, amount);
        },
    );
    assert.ok(Object.hasOwn(Savings.prototype, 'deposit'));
    assert.equal(Account.prototype.deposit, deposit, 'the parent is untouched');
    assert.equal(new Savings(1).deposit(2), 3);
    assert.equal(new Account(1).deposit(5), 6);
    assert.deepEqual(seen, [2]);
    assert.equal(Savings.prototype.deposit.length, 1);
    patches.restore();
    assert.ok(!Object.hasOwn(Savings.prototype, 'deposit'), 'no own property left behind');
    assert.equal(Savings.prototype.deposit, deposit);
  });

  it('stands a subclass in for a class, keeping its name', () => {
    class Task {
      constructor(
        readonly id: number,
        readonly name: string,
      ) {}
    }
    const exports: { Task: typeof Task } = { Task };
    const made: number[] = [];
    patches.wrap<typeof Task>(
      exports,
      'Task',
      (Original) =>
        class extends Original {
          constructor(id: number, name: string) {
            super(id, name);
            made.push(id);
          }
        },
    );
    const t = new exports.Task(7, 'seven');
    assert.ok(t instanceof Task);
    assert.equal(exports.Task.name, 'Task');
    assert.equal(exports.Task.length, Task.length);
    assert.deepEqual(made, [7]);
    patches.restore();
    assert.equal(exports.Task, Task);
  });

  it('copies properties hung on the function when asked (fs.realpathSync.native)', () => {
    const realpathSync = fs.realpathSync;
    const wrapper = patches.wrap(
      fs,
      'realpathSync',
      (original) =>
        function (this: unknown) {
          return Reflect.apply(original, this, arguments);
        },
      { copyProperties: true },
    );
    assert.ok(wrapper);
    assert.equal(fs.realpathSync.native, realpathSync.native);
    assert.equal(fs.realpathSync(__dirname), realpathSync(__dirname));
    patches.restore();
    assert.equal(fs.realpathSync, realpathSync);
  });

  it('leaves a patch laid over its own in place, and does not wrap again under it', () => {
    const target = { add };
    const ours = patches.wrap(target, 'add', (original) => (a: number, b: number) => original(a, b) + 1)!;
    const theirs = (a: number, b: number) => ours(a, b) * 2;
    target.add = theirs;
    patches.restore();
    assert.equal(target.add, theirs, "someone else's wrapper is not taken out");
    const again = new Patches('patch test, again');
    let made = 0;
    again.wrap(target, 'add', (original) => {
      made++;
      return original;
    });
    assert.equal(made, 0);
    assert.equal(target.add(1, 2), 8);
  });
});

describe('what cannot be patched', () => {
  it('reports a read-only, non-configurable property and leaves it as it was', async () => {
    const target = {};
    Object.defineProperty(target, 'fixed', { value: add, writable: false, configurable: false });
    const component = new Patches('patch test: read-only');
    let result: unknown = 'not called';
    const warnings = await warningsDuring(() => {
      result = component.wrap(target, 'fixed', (original) => (a: number, b: number) => original(a, b));
    });
    assert.equal(result, undefined);
    assert.equal((target as { fixed: unknown }).fixed, add);
    assert.equal(component.size, 0);
    assert.equal(warnings.length, 1, warnings.join('\n'));
    assert.match(warnings[0], /patch test: read-only failed and was skipped/);
    component.restore(); // nothing to undo, nothing thrown
  });

  it('reports a frozen object, a getter without a setter and a failing wrapper factory, and throws none', async () => {
    const frozen = Object.freeze({ add });
    const getter = {
      get add() {
        return add;
      },
    };
    const factory = { add };
    const component = new Patches('patch test: frozen and friends');
    const results: unknown[] = [];
    const warnings = await warningsDuring(() => {
      results.push(component.wrap(frozen, 'add', () => () => 0));
      results.push(new Patches('patch test: getter').wrap(getter, 'add', () => () => 0));
      results.push(
        new Patches('patch test: factory').wrap(factory, 'add', () => {
          throw new Error('the factory broke');
        }),
      );
    });
    assert.deepEqual(results, [undefined, undefined, undefined]);
    assert.equal(frozen.add, add);
    assert.equal(getter.add, add);
    assert.equal(factory.add, add);
    assert.equal(warnings.length, 3, warnings.join('\n'));
    assert.match(warnings[2], /patch test: factory failed and was skipped: the factory broke/);
  });

  it('tells `failed` instead of reporting, for a case the caller expects', async () => {
    const target = Object.freeze({ add });
    const told: unknown[] = [];
    const warnings = await warningsDuring(() => {
      patches.wrap(target, 'add', () => () => 0, { failed: (err) => told.push(err) });
    });
    assert.equal(told.length, 1);
    assert.ok(told[0] instanceof TypeError);
    assert.deepEqual(warnings, []);
  });

  it('skips what is not a function, silently', async () => {
    const target = { count: 3 } as Record<string, unknown>;
    const warnings = await warningsDuring(() => {
      assert.equal(
        patches.wrap(target, 'count', () => () => 0),
        undefined,
      );
      assert.equal(
        patches.wrap(target, 'missing', () => () => 0),
        undefined,
      );
    });
    assert.equal(target.count, 3);
    assert.ok(!('missing' in target));
    assert.deepEqual(warnings, []);
  });
});

describe('Patches.define', () => {
  it('installs an accessor that sees assignments, and restores the absent property', () => {
    class Queue {
      declare items: unknown[];
      constructor() {
        this.items = [];
      }
    }
    const created: unknown[] = [];
    const installed = patches.define(Queue.prototype, 'items', {
      set(this: Queue, value: unknown[]) {
        Object.defineProperty(this, 'items', { value, writable: true, enumerable: true, configurable: true });
        created.push(this);
      },
    });
    assert.equal(installed, true);
    const q = new Queue();
    assert.deepEqual(created, [q]);
    assert.deepEqual(q.items, []);
    assert.equal(patches.define(Queue.prototype, 'items', { set() {} }), true, 'already in place');
    patches.restore();
    assert.equal(Object.getOwnPropertyDescriptor(Queue.prototype, 'items'), undefined);
    new Queue();
    assert.equal(created.length, 1);
  });

  it('puts a replaced accessor back as it was', () => {
    class Limiter {
      private n = 1;
      get concurrency(): number {
        return this.n;
      }
      set concurrency(v: number) {
        this.n = v;
      }
    }
    const before = Object.getOwnPropertyDescriptor(Limiter.prototype, 'concurrency')!;
    const sets: number[] = [];
    patches.define(Limiter.prototype, 'concurrency', {
      ...before,
      set(this: Limiter, v: number) {
        sets.push(v);
        before.set!.call(this, v);
      },
    });
    const l = new Limiter();
    l.concurrency = 4;
    assert.equal(l.concurrency, 4);
    assert.deepEqual(sets, [4]);
    patches.restore();
    assert.deepEqual(Object.getOwnPropertyDescriptor(Limiter.prototype, 'concurrency'), before);
  });

  it('reports an object that cannot take the property', async () => {
    const sealed = Object.preventExtensions({});
    let result: unknown;
    const warnings = await warningsDuring(() => {
      result = new Patches('patch test: sealed').define(sealed, 'items', { set() {} });
    });
    assert.equal(result, false);
    assert.equal(warnings.length, 1, warnings.join('\n'));
  });
});

describe('shaped', () => {
  it('gives a replacement the name and length of what it replaces, once', () => {
    const replacement = shaped((...args: number[]) => add(args[0], args[1]) * 2, add);
    assert.equal(replacement.name, 'add');
    assert.equal(replacement.length, 2);
    assert.equal(originalOf(replacement), add);
    assert.equal(shaped(replacement, add), replacement, 'shaping again changes nothing');
    assert.equal(originalOf(add), undefined);
    assert.equal(originalOf(undefined), undefined);
  });
});
