// What the IPAM unit tests share.
import { expect } from 'vitest';
import { IpamError } from '../errors.js';

/** The IpamError code a call fails with, or 'no error'. */
export async function codeOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (err) {
    expect(err).toBeInstanceOf(IpamError);
    return (err as IpamError).code;
  }
  return 'no error';
}
