import { describe, expect, it } from 'vitest';
import { echoReply, formatTarget, parseReply, parseTarget, peerText } from './echo.js';

describe('echo', () => {
  it('reports IPv4 peers of a dual-stack socket as IPv4, IPv6 peers as they are', () => {
    expect(peerText('::ffff:10.244.0.1')).toBe('10.244.0.1');
    expect(peerText('::FFFF:10.88.0.11')).toBe('10.88.0.11');
    expect(peerText('fd00:244::1')).toBe('fd00:244::1');
    expect(peerText('::ffff:a:b')).toBe('::ffff:a:b');
  });

  it('answers with the address and port seen, and the prober reads the address back', () => {
    const reply = echoReply('::ffff:10.89.0.10', 40123);
    expect(reply).toBe('10.89.0.10 40123\n');
    expect(parseReply(reply)).toBe('10.89.0.10');
    expect(parseReply('fd00:88::11 5\n')).toBe('fd00:88::11');
    expect(parseReply('')).toBeUndefined();
    expect(parseReply('hello 1')).toBeUndefined();
  });

  it.each([
    ['tcp:10.244.0.1:7777', { proto: 'tcp', address: '10.244.0.1', port: 7777 }],
    ['udp:[fd00:244::1]:7777', { proto: 'udp', address: 'fd00:244::1', port: 7777 }],
  ])('parses %s and formats it back', (text, target) => {
    expect(parseTarget(text)).toEqual(target);
    expect(formatTarget(parseTarget(text))).toBe(text);
  });

  it.each([
    'sctp:10.0.0.1:1',
    'tcp:10.0.0.1',
    'tcp:fd00::1:7777',
    'udp:[fd00::1]:0',
    'udp:[fd00::1]:65536',
    'tcp:10.0.0.256:1',
  ])('refuses the target %s naming it', (text) => {
    expect(() => parseTarget(text)).toThrow(JSON.stringify(text));
  });
});
