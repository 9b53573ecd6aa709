// A map from prefix keys to values, built for full tables. IPv4 keys up to /31 (numbers below
// 2^32, see v4Key) live in an open-addressing hash table on a Uint32Array with linear probing and
// backward-shift deletion: 8 octets per slot, no per-entry objects, and no hashing of boxed
// numbers. IPv6 keys (strings) and IPv4 /32 keys go to an ordinary Map. Iteration order is not
// insertion order. Mutating the map while iterating over it is not supported.
import type { PrefixKey } from './rib.js';

const EMPTY = 0; // v4Key is never 0 (2^len + net >= 1)
const MAX_LOAD = 0.65;

export class PrefixMap<V> implements Iterable<[PrefixKey, V]> {
  private keysArr: Uint32Array;
  private vals: (V | undefined)[];
  private shift: number;
  private mask: number;
  private count = 0;
  private readonly other = new Map<PrefixKey, V>();

  constructor(capacity = 16) {
    let bits = 4;
    while (1 << bits < capacity / MAX_LOAD && bits < 30) bits++;
    this.shift = 32 - bits;
    this.mask = (1 << bits) - 1;
    this.keysArr = new Uint32Array(1 << bits);
    this.vals = new Array<V | undefined>(1 << bits).fill(undefined);
  }

  get size(): number {
    return this.count + this.other.size;
  }

  private home(k: number): number {
    return Math.imul(k, 0x9e3779b1) >>> this.shift;
  }

  private static inTable(k: PrefixKey): k is number {
    return typeof k === 'number' && k < 4294967296;
  }

  get(k: PrefixKey): V | undefined {
    if (!PrefixMap.inTable(k)) return this.other.get(k);
    const keys = this.keysArr;
    const mask = this.mask;
    for (let i = this.home(k); ; i = (i + 1) & mask) {
      const x = keys[i]!;
      if (x === k) return this.vals[i];
      if (x === EMPTY) return undefined;
    }
  }

  has(k: PrefixKey): boolean {
    if (!PrefixMap.inTable(k)) return this.other.has(k);
    const keys = this.keysArr;
    const mask = this.mask;
    for (let i = this.home(k); ; i = (i + 1) & mask) {
      const x = keys[i]!;
      if (x === k) return true;
      if (x === EMPTY) return false;
    }
  }

  set(k: PrefixKey, v: V): this {
    if (!PrefixMap.inTable(k)) {
      this.other.set(k, v);
      return this;
    }
    const keys = this.keysArr;
    const mask = this.mask;
    let i = this.home(k);
    for (; ; i = (i + 1) & mask) {
      const x = keys[i]!;
      if (x === k) {
        this.vals[i] = v;
        return this;
      }
      if (x === EMPTY) break;
    }
    if (this.count + 1 > (mask + 1) * MAX_LOAD) {
      this.grow();
      return this.set(k, v);
    }
    keys[i] = k;
    this.vals[i] = v;
    this.count++;
    return this;
  }

  delete(k: PrefixKey): boolean {
    if (!PrefixMap.inTable(k)) return this.other.delete(k);
    const keys = this.keysArr;
    const vals = this.vals;
    const mask = this.mask;
    let i = this.home(k);
    for (; ; i = (i + 1) & mask) {
      const x = keys[i]!;
      if (x === k) break;
      if (x === EMPTY) return false;
    }
    keys[i] = EMPTY;
    vals[i] = undefined;
    this.count--;
    // Backward-shift: pull later entries of the probe run into the hole when their home slot
    // is not cyclically within (hole, current].
    for (let j = (i + 1) & mask; keys[j] !== EMPTY; j = (j + 1) & mask) {
      const h = this.home(keys[j]!);
      const inRange = i <= j ? h > i && h <= j : h > i || h <= j;
      if (inRange) continue;
      keys[i] = keys[j]!;
      vals[i] = vals[j];
      keys[j] = EMPTY;
      vals[j] = undefined;
      i = j;
    }
    return true;
  }

  clear(): void {
    this.keysArr.fill(EMPTY);
    this.vals.fill(undefined);
    this.count = 0;
    this.other.clear();
  }

  private grow(): void {
    const oldKeys = this.keysArr;
    const oldVals = this.vals;
    const bits = 32 - this.shift + 1;
    this.shift = 32 - bits;
    this.mask = (1 << bits) - 1;
    this.keysArr = new Uint32Array(1 << bits);
    this.vals = new Array<V | undefined>(1 << bits).fill(undefined);
    const keys = this.keysArr;
    const mask = this.mask;
    for (let j = 0; j < oldKeys.length; j++) {
      const k = oldKeys[j]!;
      if (k === EMPTY) continue;
      let i = this.home(k);
      while (keys[i] !== EMPTY) i = (i + 1) & mask;
      keys[i] = k;
      this.vals[i] = oldVals[j];
    }
  }

  *entries(): IterableIterator<[PrefixKey, V]> {
    const keys = this.keysArr;
    for (let i = 0; i < keys.length; i++) if (keys[i] !== EMPTY) yield [keys[i]!, this.vals[i] as V];
    yield* this.other.entries();
  }

  *keys(): IterableIterator<PrefixKey> {
    const keys = this.keysArr;
    for (let i = 0; i < keys.length; i++) if (keys[i] !== EMPTY) yield keys[i]!;
    yield* this.other.keys();
  }

  *values(): IterableIterator<V> {
    const keys = this.keysArr;
    for (let i = 0; i < keys.length; i++) if (keys[i] !== EMPTY) yield this.vals[i] as V;
    yield* this.other.values();
  }

  [Symbol.iterator](): IterableIterator<[PrefixKey, V]> {
    return this.entries();
  }
}
