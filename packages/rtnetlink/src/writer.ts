// One growable writer for netlink messages: headers are reserved and their lengths back-filled,
// attributes (and nests) are appended in place. Netlink is host byte order; podnet targets
// little-endian Linux (x86_64, arm64), where that is LE.
import { addrBytes, writeAddr } from './ip.js';

export class Writer {
  buf: Buffer;
  off = 0;

  constructor(initial = 4096) {
    this.buf = Buffer.allocUnsafe(initial);
  }

  /** Makes room for n more bytes. */
  ensure(n: number): void {
    if (this.off + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.off + n) size *= 2;
    const next = Buffer.allocUnsafe(size);
    this.buf.copy(next, 0, 0, this.off);
    this.buf = next;
  }

  get length(): number {
    return this.off;
  }

  reset(): void {
    this.off = 0;
  }

  /** The bytes written so far (a view; copy it before reset if kept). */
  view(): Buffer {
    return this.buf.subarray(0, this.off);
  }

  u8(v: number): void {
    this.ensure(1);
    this.buf[this.off++] = v & 0xff;
  }

  u16(v: number): void {
    this.ensure(2);
    this.buf.writeUInt16LE(v & 0xffff, this.off);
    this.off += 2;
  }

  u32(v: number): void {
    this.ensure(4);
    this.buf.writeUInt32LE(v >>> 0, this.off);
    this.off += 4;
  }

  i32(v: number): void {
    this.ensure(4);
    this.buf.writeInt32LE(v | 0, this.off);
    this.off += 4;
  }

  bytes(b: Uint8Array): void {
    this.ensure(b.length);
    this.buf.set(b, this.off);
    this.off += b.length;
  }

  zeros(n: number): void {
    this.ensure(n);
    this.buf.fill(0, this.off, this.off + n);
    this.off += n;
  }

  /** Pads to a 4-byte boundary with zeros. */
  align(): void {
    const pad = (4 - (this.off & 3)) & 3;
    if (pad) this.zeros(pad);
  }

  /** Starts an nlmsghdr; returns its offset for end(). */
  beginMsg(type: number, flags: number, seq: number, pid = 0): number {
    this.align();
    this.ensure(16);
    const start = this.off;
    this.buf.writeUInt32LE(0, start);
    this.buf.writeUInt16LE(type, start + 4);
    this.buf.writeUInt16LE(flags, start + 6);
    this.buf.writeUInt32LE(seq >>> 0, start + 8);
    this.buf.writeUInt32LE(pid >>> 0, start + 12);
    this.off += 16;
    return start;
  }

  /** Back-fills the nlmsg_len of a message begun at `start` and pads. */
  endMsg(start: number): void {
    this.buf.writeUInt32LE(this.off - start, start);
    this.align();
  }

  /** Starts a nested attribute; returns its offset for endNest(). */
  beginNest(type: number): number {
    this.ensure(4);
    const start = this.off;
    this.buf.writeUInt16LE(0, start);
    this.buf.writeUInt16LE(type, start + 2);
    this.off += 4;
    return start;
  }

  endNest(start: number): void {
    this.buf.writeUInt16LE(this.off - start, start);
    this.align();
  }

  attr(type: number, value: Uint8Array): void {
    this.ensure(4 + value.length + 3);
    this.buf.writeUInt16LE(4 + value.length, this.off);
    this.buf.writeUInt16LE(type, this.off + 2);
    this.buf.set(value, this.off + 4);
    this.off += 4 + value.length;
    this.align();
  }

  attrU8(type: number, v: number): void {
    this.ensure(8);
    this.buf.writeUInt16LE(5, this.off);
    this.buf.writeUInt16LE(type, this.off + 2);
    this.buf.writeUInt32LE(v & 0xff, this.off + 4);
    this.off += 8;
  }

  attrU16(type: number, v: number): void {
    this.ensure(8);
    this.buf.writeUInt16LE(6, this.off);
    this.buf.writeUInt16LE(type, this.off + 2);
    this.buf.writeUInt32LE(v & 0xffff, this.off + 4);
    this.off += 8;
  }

  attrU32(type: number, v: number): void {
    this.ensure(8);
    this.buf.writeUInt16LE(8, this.off);
    this.buf.writeUInt16LE(type, this.off + 2);
    this.buf.writeUInt32LE(v >>> 0, this.off + 4);
    this.off += 8;
  }

  attrI32(type: number, v: number): void {
    this.ensure(8);
    this.buf.writeUInt16LE(8, this.off);
    this.buf.writeUInt16LE(type, this.off + 2);
    this.buf.writeInt32LE(v | 0, this.off + 4);
    this.off += 8;
  }

  /** A NUL-terminated string attribute. */
  attrStr(type: number, s: string): void {
    const n = Buffer.byteLength(s);
    this.ensure(4 + n + 1 + 3);
    this.buf.writeUInt16LE(4 + n + 1, this.off);
    this.buf.writeUInt16LE(type, this.off + 2);
    this.buf.write(s, this.off + 4);
    this.buf[this.off + 4 + n] = 0;
    this.off += 4 + n + 1;
    this.align();
  }

  /** An IPv4/IPv6 address attribute (4 or 16 bytes). */
  attrAddr(type: number, addr: string, field: string): void {
    this.ensure(20);
    const n = writeAddr(addr, this.buf, this.off + 4, field);
    this.buf.writeUInt16LE(4 + n, this.off);
    this.buf.writeUInt16LE(type, this.off + 2);
    this.off += 4 + n;
  }
}

export { addrBytes };
