import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { type KObject, PERSIST_MAX_DELAY_MS, Store } from './store.js';

type Op = { type: 'put'; name: string; v: number } | { type: 'del'; name: string };

const ops = fc.array(
  fc.oneof(
    fc.record({ type: fc.constant('put' as const), name: fc.constantFrom('a', 'b', 'c', 'd'), v: fc.nat(9) }),
    fc.record({ type: fc.constant('del' as const), name: fc.constantFrom('a', 'b', 'c', 'd') }),
  ),
  { maxLength: 60 },
);

/** Applies ops to a store; returns the state (name → v) after each revision. */
function run(store: Store, list: Op[]): Map<number, Map<string, number>> {
  const states = new Map<number, Map<string, number>>();
  const cur = new Map<string, number>();
  states.set(store.revision, new Map(cur));
  for (const op of list) {
    const old = store.get('things', 'ns', op.name);
    if (op.type === 'put') {
      const obj: KObject = { metadata: { name: op.name, namespace: 'ns' }, v: op.v };
      store.commit(old ? 'MODIFIED' : 'ADDED', 'things', obj, old);
      cur.set(op.name, op.v);
    } else if (old) {
      store.commit('DELETED', 'things', old, old);
      cur.delete(op.name);
    } else continue;
    states.set(store.revision, new Map(cur));
  }
  return states;
}

describe('store revisions and history', () => {
  it('replaying the events after any kept revision onto the state at that revision gives the current state', () => {
    fc.assert(
      fc.property(ops, fc.integer({ min: 1, max: 30 }), fc.nat(), (list, historySize, pick) => {
        const store = new Store({ historySize });
        const states = run(store, list);
        const revs = [...states.keys()];
        const from = revs[pick % revs.length]!;
        const events = store.eventsSince('things', from);
        if (from < store.compacted) {
          expect(events).toBeUndefined();
          return;
        }
        expect(events).toBeDefined();
        const state = new Map(states.get(from)!);
        let last = from;
        for (const ev of events!) {
          expect(ev.rev).toBeGreaterThan(last);
          last = ev.rev;
          expect(ev.obj.metadata.resourceVersion).toBe(String(ev.rev));
          if (ev.type === 'DELETED') state.delete(ev.obj.metadata.name!);
          else state.set(ev.obj.metadata.name!, ev.obj.v as number);
        }
        const now = new Map(store.list('things').map((o) => [o.metadata.name!, o.v as number]));
        expect(state).toEqual(now);
        expect(now).toEqual(states.get(store.revision));
      }),
    );
  });

  it('gives every write a new, strictly increasing resourceVersion', () => {
    fc.assert(
      fc.property(ops, (list) => {
        const store = new Store();
        const seen: number[] = [];
        store.addWatcher({
          typeKey: 'things',
          deliver: (ev) => seen.push(Number(ev.obj.metadata.resourceVersion)),
        });
        run(store, list);
        expect(seen).toEqual([...seen].sort((x, y) => x - y));
        expect(new Set(seen).size).toBe(seen.length);
        expect(seen.at(-1) ?? 0).toBe(store.revision);
      }),
    );
  });
});

describe('store persistence', () => {
  it('waits longer after a costly snapshot write: 20 times its cost, between the least debounce and 5 s', () => {
    const dir = mkdtempSync(join(tmpdir(), 'podnet-store-'));
    try {
      let clock = 0;
      let cost = 0;
      const store = new Store({
        dataFile: join(dir, 'data.json'),
        persistDelayMs: 100,
        now: () => {
          clock += cost;
          return clock;
        },
      });
      expect(store.persistDelay()).toBe(100);
      const put = (name: string) =>
        store.commit('ADDED', 'things', { metadata: { name, namespace: 'ns' } }, undefined);
      cost = 2; // the write is timed by two readings: 2 ms apart
      put('a');
      store.flush();
      expect(store.persistDelay()).toBe(100); // 20 x 2 ms < 100 ms
      cost = 30;
      put('b');
      store.flush();
      expect(store.persistDelay()).toBe(600);
      cost = 1000;
      put('c');
      store.flush();
      expect(store.persistDelay()).toBe(PERSIST_MAX_DELAY_MS);
      const read = () =>
        JSON.parse(readFileSync(join(dir, 'data.json'), 'utf8')) as {
          revision: number;
          objects: { typeKey: string; obj: KObject }[];
        };
      expect(read().objects).toHaveLength(3);
      // A changed object is written as it is now (not the text kept from the last write), a
      // deleted one is gone, and a new store loads the same state.
      const old = store.get('things', 'ns', 'a')!;
      store.commit('MODIFIED', 'things', { ...old, spec: { v: 2 } }, old);
      store.commit('DELETED', 'things', store.get('things', 'ns', 'b')!, store.get('things', 'ns', 'b'));
      store.flush();
      const saved = read();
      expect(saved.revision).toBe(store.revision);
      expect(saved.objects.map((o) => [o.typeKey, o.obj.metadata.name]).sort()).toEqual([
        ['things', 'a'],
        ['things', 'c'],
      ]);
      expect(saved.objects.find((o) => o.obj.metadata.name === 'a')?.obj).toEqual(
        store.get('things', 'ns', 'a'),
      );
      const again = new Store({ dataFile: join(dir, 'data.json') });
      expect(again.load()).toBe(true);
      expect(again.list('things')).toEqual(store.list('things'));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('writes the snapshot off the event loop, and an older write never replaces a newer one', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'podnet-store-'));
    try {
      const file = join(dir, 'data.json');
      // A clock that stands still: every write costs 0 ms, so the next one is due at once.
      const store = new Store({ dataFile: file, persistDelayMs: 0, now: () => 0 });
      const names = (): string[] =>
        (JSON.parse(readFileSync(file, 'utf8')) as { objects: { obj: KObject }[] }).objects
          .map((o) => o.obj.metadata.name!)
          .sort();
      // Large enough that the background write is still under way when flush() runs below.
      for (let i = 0; i < 2000; i++)
        store.commit(
          'ADDED',
          'things',
          { metadata: { name: `t${i}`, namespace: 'ns' }, spec: { pad: 'x'.repeat(500) } },
          undefined,
        );
      for (let i = 0; i < 200 && !existsSync(file); i++) await new Promise((r) => setTimeout(r, 10));
      expect(names()).toHaveLength(2000);
      // The timer's write starts (its text has t0..t1999); a newer state is flushed synchronously
      // while it runs; the newer file stays.
      store.commit('DELETED', 'things', store.get('things', 'ns', 't0')!, store.get('things', 'ns', 't0'));
      await new Promise((r) => setTimeout(r, 0));
      store.commit('DELETED', 'things', store.get('things', 'ns', 't1')!, store.get('things', 'ns', 't1'));
      store.flush();
      await store.drain();
      const left = names();
      expect(left).toHaveLength(1998);
      expect(left).not.toContain('t1');
      expect(readdirSync(dir)).toEqual(['data.json']); // no temp file left behind
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('reports a failed background write and keeps the state to write again', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'podnet-store-'));
    try {
      writeFileSync(join(dir, 'blocker'), 'not a directory');
      const errors: unknown[] = [];
      const store = new Store({
        dataFile: join(dir, 'blocker', 'data.json'),
        persistDelayMs: 0,
        onPersistError: (err) => errors.push(err),
      });
      store.commit('ADDED', 'things', { metadata: { name: 'a', namespace: 'ns' } }, undefined);
      for (let i = 0; i < 200 && errors.length === 0; i++) await new Promise((r) => setTimeout(r, 10));
      expect(String(errors[0])).toMatch(/ENOTDIR|EEXIST/);
      // The next try waits the longest delay, not a tight loop of failures.
      expect(store.persistDelay()).toBe(PERSIST_MAX_DELAY_MS);
      rmSync(join(dir, 'blocker'));
      await store.drain(); // the synchronous flush writes the state kept dirty
      expect(existsSync(join(dir, 'blocker', 'data.json'))).toBe(true);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
