// Splits a TCP byte stream into whole BGP messages. The header is validated as soon as its 19
// octets are in, before waiting for the body (so a bad length fails fast), and only whole frames
// are emitted. Frames are views into the framer's buffer: valid until the next `push`.
import { HEADER_LEN } from './constants.js';
import { checkHeader } from './messages.js';

export class Framer {
  private buf: Buffer = Buffer.alloc(0);
  private start = 0;
  private end = 0;

  /**
   * Appends a chunk and calls `onFrame(frame, type)` for each whole message. Throws the BgpError
   * of the first bad header; the stream is unusable afterwards.
   */
  push(chunk: Uint8Array, onFrame: (frame: Buffer, msgType: number) => void): void {
    this.append(chunk);
    while (this.end - this.start >= HEADER_LEN) {
      const { length, msgType } = checkHeader(this.buf, this.start);
      if (this.end - this.start < length) break;
      const f = this.buf.subarray(this.start, this.start + length);
      this.start += length;
      onFrame(f, msgType);
    }
    if (this.start === this.end) {
      this.start = 0;
      this.end = 0;
    }
  }

  /** Octets held waiting for the rest of a message. */
  get pending(): number {
    return this.end - this.start;
  }

  private append(chunk: Uint8Array): void {
    const have = this.end - this.start;
    if (have === 0 && chunk.length >= HEADER_LEN) {
      // Fast path: frame straight from the chunk; copy only a leftover tail.
      this.buf = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.length);
      this.start = 0;
      this.end = chunk.length;
      this.owned = false;
      return;
    }
    if (!this.owned || this.end + chunk.length > this.buf.length) {
      const next = Buffer.allocUnsafe(Math.max(8192, have + chunk.length, this.buf.length));
      this.buf.copy(next, 0, this.start, this.end);
      this.buf = next;
      this.start = 0;
      this.end = have;
      this.owned = true;
    }
    this.buf.set(chunk, this.end);
    this.end += chunk.length;
  }
  private owned = true;
}
