// One growable writer that reserves length fields and back-fills them (pg-protocol buffer-writer
// style). Reads use plain offsets over a Uint8Array view, no copies.

export class Writer {
  private buf: Buffer;
  private off = 0;
  constructor(size = 256) {
    this.buf = Buffer.allocUnsafe(size);
  }
  get length(): number {
    return this.off;
  }
  private ensure(n: number): void {
    if (this.off + n <= this.buf.length) return;
    const next = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.off + n));
    this.buf.copy(next, 0, 0, this.off);
    this.buf = next;
  }
  u8(v: number): this {
    this.ensure(1);
    this.buf[this.off++] = v & 255;
    return this;
  }
  u16(v: number): this {
    this.ensure(2);
    this.buf.writeUInt16BE(v & 0xffff, this.off);
    this.off += 2;
    return this;
  }
  u32(v: number): this {
    this.ensure(4);
    this.buf.writeUInt32BE(v >>> 0, this.off);
    this.off += 4;
    return this;
  }
  bytes(b: Uint8Array): this {
    this.ensure(b.length);
    this.buf.set(b, this.off);
    this.off += b.length;
    return this;
  }
  /** Reserves `n` octets and returns their offset for a later `patchU8/patchU16`. */
  reserve(n: number): number {
    this.ensure(n);
    const at = this.off;
    this.off += n;
    return at;
  }
  patchU8(at: number, v: number): void {
    this.buf[at] = v & 255;
  }
  patchU16(at: number, v: number): void {
    this.buf.writeUInt16BE(v & 0xffff, at);
  }
  /** Removes everything after `len` (used to roll back a partly written item). */
  truncate(len: number): void {
    this.off = len;
  }
  /** A copy of what was written. */
  toBuffer(): Buffer {
    return Buffer.from(this.buf.subarray(0, this.off));
  }
}

export function u16(b: Uint8Array, off: number): number {
  return ((b[off] ?? 0) << 8) | (b[off + 1] ?? 0);
}

export function u32(b: Uint8Array, off: number): number {
  return (
    (((b[off] ?? 0) << 24) | ((b[off + 1] ?? 0) << 16) | ((b[off + 2] ?? 0) << 8) | (b[off + 3] ?? 0)) >>> 0
  );
}
