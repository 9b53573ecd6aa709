import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cleanupStale, type Netns, NetnsSet, vethPair, waitFor } from '@podnet/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  addonInfo,
  closeFd,
  createTcpSocket,
  mallocTune,
  NativeError,
  NETLINK_ROUTE,
  type NetlinkSocket,
  openNetlink,
  openPacket,
  openUdp,
  periodicSender,
  recvFds,
  setPeriodicSenderPriority,
  setTcpMd5,
  type UdpMeta,
} from './index.js';

const RTM_NEWLINK = 16;
const RTM_GETLINK = 18;
const NLMSG_DONE = 3;
const RTNLGRP_LINK = 1;

function linkDumpRequest(seq: number): Buffer {
  const b = Buffer.alloc(32);
  b.writeUInt32LE(32, 0);
  b.writeUInt16LE(RTM_GETLINK, 4);
  b.writeUInt16LE(0x1 | 0x300, 6); // NLM_F_REQUEST | NLM_F_DUMP
  b.writeUInt32LE(seq, 8);
  return b;
}

function* messages(datagram: Buffer): Generator<{ type: number; seq: number; body: Buffer }> {
  let off = 0;
  while (off + 16 <= datagram.length) {
    const len = datagram.readUInt32LE(off);
    if (len < 16) return;
    yield {
      type: datagram.readUInt16LE(off + 4),
      seq: datagram.readUInt32LE(off + 8),
      body: datagram.subarray(off + 16, off + len),
    };
    off += (len + 3) & ~3;
  }
}

/** Names (IFLA_IFNAME) of the links in a dump. */
function dumpLinkNames(sock: NetlinkSocket, seq: number): Promise<string[]> {
  return new Promise((resolve, reject) => {
    const names: string[] = [];
    sock.onMessage((d) => {
      for (const m of messages(d)) {
        if (m.seq !== seq) continue;
        if (m.type === NLMSG_DONE) resolve(names);
        if (m.type === RTM_NEWLINK) {
          let off = 16;
          while (off + 4 <= m.body.length) {
            const alen = m.body.readUInt16LE(off);
            const atype = m.body.readUInt16LE(off + 2);
            if (alen < 4) break;
            if (atype === 3) names.push(m.body.toString('utf8', off + 4, off + alen - 1));
            off += (alen + 3) & ~3;
          }
        }
      }
    }, reject);
    sock.send(linkDumpRequest(seq));
  });
}

/**
 * Runs an ES module `script` in a fresh Node process (`--expose-gc`, `require` defined) and returns
 * the JSON it printed; the process must exit 0. For memory measurements away from the test runner.
 */
async function inChild(script: string): Promise<unknown> {
  const child = spawn(
    process.execPath,
    [
      '--expose-gc',
      '--input-type=module',
      '-e',
      `import { createRequire } from 'node:module'; const require = createRequire(import.meta.url);\n${script}`,
    ],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  let out = '';
  child.stdout.on('data', (d) => {
    out += d;
  });
  const [code] = await once(child, 'exit');
  expect(code).toBe(0);
  return JSON.parse(out);
}

const lab = new NetnsSet();
let a: Netns;
let b: Netns;

beforeAll(async () => {
  await cleanupStale();
  a = await lab.create('nata');
  b = await lab.create('natb');
  await vethPair(a, 'va', b, 'vb');
  await a.ip('addr', 'add', '10.77.0.1/24', 'dev', 'va');
  await b.ip('addr', 'add', '10.77.0.2/24', 'dev', 'vb');
  await a.ip('addr', 'add', 'fd77::1/64', 'dev', 'va', 'nodad');
  await b.ip('addr', 'add', 'fd77::2/64', 'dev', 'vb', 'nodad');
});

afterAll(async () => {
  await lab.destroy();
});

describe('native addon', () => {
  it('loads the compiled addon and reports the N-API version it was built for', () => {
    expect(addonInfo().napiVersion).toBe(8);
  });
});

describe('malloc settings and trimming (glibc)', () => {
  it('refuses a bad value, naming the field and the value', () => {
    expect(() => mallocTune({ arenaMax: -1 })).toThrow(/arenaMax: .*\(got -1\)/);
    expect(() => mallocTune({ mmapThreshold: 2 ** 40 })).toThrow(/mmapThreshold/);
  });

  it('gives the freed heap of a process back to the kernel', async () => {
    // A child process: malloc 80 MB in 4 KiB blocks (under the mmap threshold: the heap), free them,
    // then malloc_trim. The blocks are ArrayBuffer stores, which Node takes from malloc.
    const script = `
      const { mallocTrim, mallocTune } = await import(${JSON.stringify(new URL('../dist/index.js', import.meta.url).href)});
      const rss = () => Number(/VmRSS:\\s+(\\d+)/.exec(require('node:fs').readFileSync('/proc/self/status', 'utf8'))[1]) * 1024;
      const tuned = mallocTune({ arenaMax: 2, mmapThreshold: 128 * 1024, trimThreshold: 128 * 1024 });
      let held = [];
      for (let i = 0; i < 20000; i++) held.push(new Uint8Array(new ArrayBuffer(4096)).fill(1));
      // Keep one block in 64 so the heap's top stays in use: only malloc_trim can give back the rest.
      held = held.filter((_, i) => i % 64 === 63);
      globalThis.gc(); globalThis.gc();
      await new Promise((r) => setTimeout(r, 200));
      const before = rss();
      const released = mallocTrim();
      const after = rss();
      console.log(JSON.stringify({ tuned, released, freedMb: (before - after) / 1048576, kept: held.length }));
    `;
    const r = (await inChild(script)) as { tuned: boolean; released: boolean; freedMb: number; kept: number };
    expect(r.tuned).toBe(true);
    expect(r.released).toBe(true);
    expect(r.kept).toBe(312);
    expect(r.freedMb).toBeGreaterThan(40);
  });
});

describe('releasing the executable pages', () => {
  it('unmaps the pages start-up touched; the process goes on with the same bytes, its private copies kept', async () => {
    // A child process warms up (hashing, JSON, a regular expression, compiling a function), notes
    // its results and the executable's resident and private (relocated) pages, releases, and does
    // the same work again.
    const script = `
      const { releaseExecutablePages } = await import(${JSON.stringify(new URL('../dist/index.js', import.meta.url).href)});
      const fs = require('node:fs');
      const crypto = require('node:crypto');
      const exe = fs.readlinkSync('/proc/self/exe');
      const pages = () => {
        let rss = 0, anon = 0, mine = false;
        for (const line of fs.readFileSync('/proc/self/smaps', 'utf8').split('\\n')) {
          const head = /^[0-9a-f]+-[0-9a-f]+ \\S+ \\S+ \\S+ \\S+\\s*(.*)$/.exec(line);
          if (head) { mine = head[1] === exe; continue; }
          const kb = /^(Rss|Anonymous):\\s+(\\d+) kB/.exec(line);
          if (mine && kb) kb[1] === 'Rss' ? (rss += Number(kb[2])) : (anon += Number(kb[2]));
        }
        return { rss: rss * 1024, anon: anon * 1024 };
      };
      const work = () => [
        crypto.createHash('sha256').update('podnet').digest('hex'),
        JSON.stringify(JSON.parse('{"a":[1,2,3],"b":"c"}')),
        /(\\d+)-(\\d+)/.exec('10-20')[2],
        new Function('x', 'return x * 7')(6),
        [3, 1, 2].sort().join(),
      ].join(' ');
      const expected = work();
      const before = pages();
      const released = releaseExecutablePages();
      const after = pages();
      let same = 0;
      for (let i = 0; i < 3; i++) if (work() === expected) same++;
      console.log(JSON.stringify({ before, released, after, same, expected, exeBytes: fs.statSync(exe).size }));
    `;
    type Pages = { rss: number; anon: number };
    const r = (await inChild(script)) as {
      before: Pages;
      released: number;
      after: Pages;
      same: number;
      expected: string;
      exeBytes: number;
    };
    const mb = 1024 * 1024;
    expect(r.released).toBeGreaterThan(10 * mb);
    // What was resident when it ran (more than the reading just before it: V8's threads go on
    // faulting pages in), never more than the executable.
    expect(r.released).toBeLessThanOrEqual(r.exeBytes);
    // Reading smaps after the release runs code too, which comes back: still far fewer pages.
    expect(r.after.rss).toBeLessThan(r.before.rss - 10 * mb);
    // The relocated part (RELRO, .data) holds private copies: kept, not reverted to the file's bytes.
    expect(r.before.anon).toBeGreaterThan(0);
    expect(r.after.anon).toBe(r.before.anon);
    expect(r.same).toBe(3);
    expect(r.expected).toMatch(/^[0-9a-f]{64} \{"a":\[1,2,3\],"b":"c"\} 20 42 1,2,3$/);
  });
});

describe('receive buffers', () => {
  it('a netlink socket holds only the pages of its 1 MiB receive buffer that datagrams touched', async () => {
    // A child process opens 32 netlink sockets (each with a 1 MiB receive buffer) and dumps the
    // links on each: zero-filled buffers would add 32 MiB of RSS.
    const script = `
      const { openNetlink, NETLINK_ROUTE } = await import(${JSON.stringify(new URL('../dist/index.js', import.meta.url).href)});
      const rss = () => Number(/VmRSS:\\s+(\\d+)/.exec(require('node:fs').readFileSync('/proc/self/status', 'utf8'))[1]) * 1024;
      const dump = Buffer.alloc(32);
      dump.writeUInt32LE(32, 0); dump.writeUInt16LE(18, 4); dump.writeUInt16LE(0x301, 6); dump.writeUInt32LE(1, 8);
      globalThis.gc();
      const before = rss();
      const socks = [];
      let answered = 0;
      for (let i = 0; i < 32; i++) {
        const s = openNetlink({ protocol: NETLINK_ROUTE, netns: ${JSON.stringify(a.path)} });
        await new Promise((resolve) => {
          s.onMessage((d) => { if (d.readUInt16LE(4) === 3) { answered++; resolve(); } });
          s.send(dump);
        });
        socks.push(s);
      }
      globalThis.gc();
      const grewMb = (rss() - before) / 1048576;
      for (const s of socks) s.close();
      console.log(JSON.stringify({ answered, grewMb }));
    `;
    const r = (await inChild(script)) as { answered: number; grewMb: number };
    expect(r.answered).toBe(32);
    expect(r.grewMb).toBeLessThan(8);
  });
});

describe('closing', () => {
  it('a closed socket, and whatever its callbacks reach, can be garbage-collected', async () => {
    // The callbacks close over the socket (as every client's do). Held by the addon after close(),
    // they kept the socket object, its buffers and their owner alive for good.
    const script = `
      const { openNetlink, openUdp, NETLINK_ROUTE } = await import(${JSON.stringify(new URL('../dist/index.js', import.meta.url).href)});
      const refs = [];
      for (let i = 0; i < 20; i++) {
        const owner = { payload: new Uint8Array(256 * 1024) };
        owner.nl = openNetlink({ protocol: NETLINK_ROUTE, netns: ${JSON.stringify(a.path)} });
        owner.nl.onMessage(() => owner.payload[0]++);
        owner.udp = openUdp({ family: 4, port: 0, ttl: 255, netns: ${JSON.stringify(a.path)} });
        owner.udp.onDatagram(() => owner.payload[1]++);
        owner.nl.close();
        owner.udp.close();
        refs.push(new WeakRef(owner));
      }
      for (let i = 0; i < 5; i++) {
        await new Promise((r) => setTimeout(r, 20));
        globalThis.gc();
      }
      console.log(JSON.stringify({ alive: refs.filter((r) => r.deref() !== undefined).length }));
    `;
    const r = (await inChild(script)) as { alive: number };
    expect(r.alive).toBe(0);
  });
});

describe('periodic sender (a thread of the addon sends stored datagrams)', () => {
  it('keeps sending while the event loop is blocked, with the TTL and jitter asked for, the packet replaced in place', async () => {
    const rx = openUdp({ family: 4, bindAddress: '10.77.0.2', port: 0, ttl: 255, netns: b.path });
    const tx = openUdp({ family: 4, bindAddress: '10.77.0.1', port: 0, ttl: 255, netns: a.path });
    const got: { data: string; meta: UdpMeta }[] = [];
    rx.onDatagram((d, meta) => got.push({ data: d.toString(), meta }));
    // Before the first sender, no thread runs: nothing to set.
    expect(setPeriodicSenderPriority(0)).toBe(0);
    const sender = periodicSender(tx, '10.77.0.2', rx.port, { measure: true });
    try {
      sender.arm(Buffer.from('first'), 20_000, 3, false);
      // The socket it was made from can go: the sender holds its own descriptor.
      tx.close();
      // Nothing else runs on this thread for 500 ms: the addon's thread sends on.
      const t0 = Date.now();
      while (Date.now() - t0 < 500) {
        /* busy */
      }
      expect(sender.stats().gapsMs).toEqual([]);
      const during = sender.drain();
      expect(during.sent).toBeGreaterThanOrEqual(10);
      expect(during.errors).toBe(0);
      // Every interval is 20 ms less 0-25%, never shorter (the clock is monotonic).
      expect(during.gapsMs.length).toBeGreaterThanOrEqual(9);
      expect(Math.min(...during.gapsMs)).toBeGreaterThanOrEqual(15);
      await waitFor('the packets sent while blocked', () => got.length >= 10);
      expect(
        got.every((g) => g.data === 'first' && g.meta.ttl === 255 && g.meta.address === '10.77.0.1'),
      ).toBe(true);
      expect(got[0]!.meta.port).toBe(tx.port);

      sender.update(Buffer.from('second'));
      await waitFor('the replaced packet', () => got.at(-1)?.data === 'second');

      // The thread runs now: its nice value can be raised (lowering it needs CAP_SYS_NICE).
      const tid = setPeriodicSenderPriority(5);
      expect(readFileSync(`/proc/self/task/${tid}/comm`, 'utf8').trim()).toBe('podnet-tx');
      // It takes no signals: signals 1-16 are all blocked but SIGKILL (9), which cannot be.
      const blocked = /SigBlk:\s+([0-9a-f]+)/.exec(
        readFileSync(`/proc/self/task/${tid}/status`, 'utf8'),
      )![1]!;
      expect(BigInt(`0x${blocked}`) & 0xfeffn).toBe(0xfeffn);
      expect(readFileSync(`/proc/self/task/${tid}/stat`, 'utf8').split(') ')[1]!.split(' ')[16]).toBe('5');

      sender.pause();
      await new Promise((r) => setTimeout(r, 60));
      const paused = got.length;
      await new Promise((r) => setTimeout(r, 100));
      expect(got.length).toBe(paused);

      // Paced: the first packet 75% of the interval after the last one, here long past: at once.
      sender.arm(Buffer.from('third'), 1_000_000, 3, true);
      await waitFor('the re-armed packet', () => got.at(-1)?.data === 'third');
      expect(got.filter((g) => g.data === 'third').length).toBe(1);
      sender.close();
      const sent = got.length;
      await new Promise((r) => setTimeout(r, 100));
      expect(got.length).toBe(sent);
      expect(sender.stats().sent).toBe(0);
      expect(() => sender.arm(Buffer.from('x'), 20_000, 3, false)).toThrow(/closed/);
    } finally {
      sender.close();
      rx.close();
      tx.close();
    }
  });

  it('refuses bad arguments by name', () => {
    const tx = openUdp({ family: 4, port: 0, ttl: 255, netns: a.path });
    try {
      expect(() => periodicSender(tx, '10.77.0.2', 0)).toThrow(/port/);
      expect(() => periodicSender(tx, 'fd77::2', 3784)).toThrow(/does not fit the socket/);
      const s = periodicSender(tx, '10.77.0.2', 3784);
      expect(() => s.arm(Buffer.from('x'), 999, 3, false)).toThrow(/intervalUs/);
      expect(() => s.arm(Buffer.from('x'), 2 ** 32, 3, false)).toThrow(/intervalUs/);
      // The longest BFD interval (a hold-over's) is taken: nothing goes out for 71 minutes after the first.
      s.arm(Buffer.from('x'), 0xffff_ffff, 3, true);
      expect(() => s.arm(Buffer.from('x'), 20_000, 0, false)).toThrow(/detectMult/);
      s.close();
      expect(() => setPeriodicSenderPriority(-21)).toThrow(/nice/);
    } finally {
      tx.close();
    }
  });
});

describe('netlink sockets', () => {
  it('dumps the links of the namespace the socket was opened in, not the caller’s', async () => {
    const sock = openNetlink({ protocol: NETLINK_ROUTE, netns: a.path, rcvbuf: 1 << 20 });
    try {
      expect(sock.portId).toBeGreaterThan(0);
      const names = await dumpLinkNames(sock, 7);
      expect(names.sort()).toEqual(['lo', 'va']);
    } finally {
      sock.close();
    }
  });

  it('delivers multicast link events after joining RTNLGRP_LINK', async () => {
    const sock = openNetlink({ protocol: NETLINK_ROUTE, netns: b.path, groups: [RTNLGRP_LINK] });
    const seen: number[] = [];
    sock.onMessage((d) => {
      for (const m of messages(d)) seen.push(m.type);
    });
    try {
      await b.ip('link', 'add', 'ev0', 'type', 'veth', 'peer', 'name', 'ev1');
      await waitFor('an RTM_NEWLINK event', () => seen.includes(RTM_NEWLINK), { timeoutMs: 10_000 });
    } finally {
      sock.close();
      await b.exec('ip', ['link', 'del', 'ev0']);
    }
  });

  it('close is idempotent and send after close fails with EBADF', () => {
    const sock = openNetlink({ protocol: NETLINK_ROUTE });
    sock.close();
    sock.close();
    expect(() => sock.send(linkDumpRequest(1))).toThrow(expect.objectContaining({ code: 'EBADF' }));
  });

  it('switches strict checking and extended ACKs on a live socket', () => {
    const sock = openNetlink({ protocol: NETLINK_ROUTE });
    try {
      sock.setStrictCheck(true);
      sock.setExtAck(true);
      sock.addMembership(RTNLGRP_LINK);
      sock.dropMembership(RTNLGRP_LINK);
      sock.pause();
      sock.unref();
      sock.ref();
    } finally {
      sock.close();
    }
  });

  const bad: [string, () => unknown, string][] = [
    [
      'a missing namespace path',
      () => openNetlink({ protocol: 0, netns: '/var/run/netns/pnt-none-0-0' }),
      'ENOENT',
    ],
    ['a protocol out of range', () => openNetlink({ protocol: 99 }), 'EINVAL'],
    ['a non-integer group', () => openNetlink({ protocol: 0, groups: [1.5] }), 'EINVAL'],
    ['an unbound ifindex for a packet socket', () => openPacket({ ifindex: 0, ethertype: 0x806 }), 'EINVAL'],
    [
      'a packet socket on an interface that does not exist',
      () => openPacket({ ifindex: 999_999, ethertype: 0x806 }),
      'ENODEV',
    ],
    [
      'an MD5 key longer than 80 bytes',
      () => createTcpSocket({ family: 4, md5: [{ peer: '10.0.0.1', key: 'x'.repeat(81) }] }),
      'EINVAL',
    ],
    [
      'an MD5 peer that is not an address',
      () => createTcpSocket({ family: 4, md5: [{ peer: 'nope', key: 'k' }] }),
      'EINVAL',
    ],
    [
      'a bind address of the wrong family',
      () => createTcpSocket({ family: 4, bindAddress: '::1', bindPort: 0 }),
      'EINVAL',
    ],
    ['setTcpMd5 on a closed descriptor', () => setTcpMd5(999_999, '10.0.0.1', 'k'), 'EBADF'],
  ];
  it.each(bad)('rejects %s with a NativeError naming the errno', (_name, fn, code) => {
    let caught: unknown;
    try {
      fn();
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(NativeError);
    expect((caught as NativeError).code).toBe(code);
    expect((caught as NativeError).message.length).toBeGreaterThan(0);
  });
});

describe('packet sockets', () => {
  it('receives a frame sent by the peer namespace, with its ifindex and packet type', async () => {
    const links = await b.ipJson<{ ifname: string; ifindex: number; address: string }[]>(
      'link',
      'show',
      'vb',
    );
    const aLinks = await a.ipJson<{ ifname: string; ifindex: number; address: string }[]>(
      'link',
      'show',
      'va',
    );
    const vb = links[0]!;
    const va = aLinks[0]!;
    const rx = openPacket({ ifindex: vb.ifindex, ethertype: 0x88b5, netns: b.path });
    const tx = openPacket({ ifindex: va.ifindex, ethertype: 0x88b5, netns: a.path });
    try {
      const got = new Promise<{ frame: Buffer; ifindex: number; pktType: number }>((resolve) =>
        rx.onFrame((frame, meta) => resolve({ frame, ...meta })),
      );
      const frame = Buffer.alloc(60);
      Buffer.from(vb.address.replaceAll(':', ''), 'hex').copy(frame, 0);
      Buffer.from(va.address.replaceAll(':', ''), 'hex').copy(frame, 6);
      frame.writeUInt16BE(0x88b5, 12); // IEEE local experimental EtherType
      frame.write('podnet-packet-test', 14);
      tx.send(frame);
      const r = await got;
      expect(r.ifindex).toBe(vb.ifindex);
      expect(r.pktType).toBe(0); // PACKET_HOST: addressed to vb's MAC
      expect(r.frame.subarray(14, 32).toString()).toBe('podnet-packet-test');
    } finally {
      rx.close();
      tx.close();
      rx.close();
    }
  });
});

describe('packet sockets with a reused frame buffer and without outgoing frames', () => {
  it('delivers each frame as a view of one reused buffer, and never the socket’s own sends', async () => {
    const vb = (await b.ipJson<{ ifindex: number; address: string }[]>('link', 'show', 'vb'))[0]!;
    const va = (await a.ipJson<{ ifindex: number; address: string }[]>('link', 'show', 'va'))[0]!;
    const ETHERTYPE = 0x88b6;
    // Bound to ETH_P_ALL: only such sockets get outgoing frames at all (the kernel's taps).
    const ETH_P_ALL = 0x0003;
    const rx = openPacket({
      ifindex: vb.ifindex,
      ethertype: ETH_P_ALL,
      netns: b.path,
      ignoreOutgoing: true,
      reuseFrameBuffer: true,
    });
    const control = openPacket({ ifindex: vb.ifindex, ethertype: ETH_P_ALL, netns: b.path });
    const tx = openPacket({ ifindex: va.ifindex, ethertype: ETHERTYPE, netns: a.path });
    // Sends from vb's side; a socket never gets its own sends back, so this is a third one.
    const txb = openPacket({ ifindex: vb.ifindex, ethertype: ETHERTYPE, netns: b.path });
    const frameTo = (dst: string, src: string, text: string, len: number) => {
      const f = Buffer.alloc(len);
      Buffer.from(dst.replaceAll(':', ''), 'hex').copy(f, 0);
      Buffer.from(src.replaceAll(':', ''), 'hex').copy(f, 6);
      f.writeUInt16BE(ETHERTYPE, 12);
      f.write(text, 14);
      return f;
    };
    try {
      const seen: { text: string; length: number; pktType: number; store: ArrayBufferLike; meta: object }[] =
        [];
      const controlSeen: { text: string; pktType: number }[] = [];
      const done = new Promise<void>((resolve) =>
        rx.onFrame((frame, meta) => {
          if (frame.readUInt16BE(12) !== ETHERTYPE) return; // other traffic on the link (IPv6 RS…)
          const text = frame.subarray(14, 14 + 6).toString();
          seen.push({ text, length: frame.length, pktType: meta.pktType, store: frame.buffer, meta });
          if (text === 'end...') resolve();
        }),
      );
      control.onFrame((frame, meta) => {
        if (frame.readUInt16BE(12) === ETHERTYPE)
          controlSeen.push({ text: frame.subarray(14, 20).toString(), pktType: meta.pktType });
      });
      tx.send(frameTo(vb.address, va.address, 'one...', 60));
      tx.send(frameTo(vb.address, va.address, 'two...', 100));
      txb.send(frameTo(va.address, vb.address, 'mine..', 60)); // outgoing on vb: not for rx
      tx.send(frameTo(vb.address, va.address, 'end...', 60));
      await done;
      expect(seen.map((x) => [x.text, x.length, x.pktType])).toEqual([
        ['one...', 60, 0],
        ['two...', 100, 0],
        ['end...', 60, 0],
      ]);
      // One backing store and one meta object for every frame.
      expect(new Set(seen.map((x) => x.store)).size).toBe(1);
      expect(new Set(seen.map((x) => x.meta)).size).toBe(1);
      // A socket without ignoreOutgoing sees that send as PACKET_OUTGOING (4).
      await waitFor('the control socket to see all four frames', () => controlSeen.length >= 4);
      expect(controlSeen).toContainEqual({ text: 'mine..', pktType: 4 });
    } finally {
      rx.close();
      control.close();
      tx.close();
      txb.close();
    }
  });
});

describe('packet sockets with a reply cache', () => {
  it.each([
    ['on the event loop', false],
    ['on a receive thread', true],
  ])(
    'answers frames equal on the masked bytes from the addon (%s), counts them, and hands the rest to JS',
    async (_, fastPathThread) => {
      const vb = (await b.ipJson<{ ifindex: number; address: string }[]>('link', 'show', 'vb'))[0]!;
      const va = (await a.ipJson<{ ifindex: number; address: string }[]>('link', 'show', 'va'))[0]!;
      const ETHERTYPE = 0x88b7;
      const mac = (m: string) => Buffer.from(m.replaceAll(':', ''), 'hex');
      // The key: Ethernet source, EtherType and the 6-byte tag at 14; not the destination (0..5).
      const mask = Buffer.alloc(20);
      mask.fill(0xff, 6, 20);
      const frame = (dst: string, src: string, tag: string, tail = 0) => {
        const f = Buffer.alloc(60);
        mac(dst).copy(f, 0);
        mac(src).copy(f, 6);
        f.writeUInt16BE(ETHERTYPE, 12);
        f.write(tag, 14);
        f[40] = tail; // outside the mask
        return f;
      };
      const request = (tag: string, tail = 0, dst = vb.address) => frame(dst, va.address, tag, tail);
      const answer = (tag: string) => frame(va.address, vb.address, tag);
      const rx = openPacket({
        ifindex: vb.ifindex,
        ethertype: ETHERTYPE,
        netns: b.path,
        reuseFrameBuffer: true,
        replyCache: { mask, capacity: 2 },
        fastPathThread,
      });
      expect(rx.threaded).toBe(fastPathThread);
      const tx = openPacket({ ifindex: va.ifindex, ethertype: ETHERTYPE, netns: a.path });
      const toJs: string[] = [];
      const answers: string[] = [];
      const install = new Map<string, string>(); // request tag -> answer tag, installed when JS sees it
      rx.onFrame((f, meta) => {
        const tag = f.subarray(14, 20).toString();
        toJs.push(`${tag}/${meta.pktType}`);
        const reply = install.get(tag);
        if (reply) rx.replyCache!.add(f, meta, answer(reply));
      });
      tx.onFrame((f) => {
        answers.push(f.subarray(14, 20).toString());
      });
      let syncs = 0;
      /** Sends `f`, then a marker frame; resolves once JS has seen the marker (frames go in order). */
      const exchange = async (f: Buffer) => {
        const js = toJs.length;
        const ans = answers.length;
        tx.send(f);
        const marker = `sync${String(syncs++).padStart(2, '0')}`;
        tx.send(request(marker));
        await waitFor(`JS to see ${marker}`, () => toJs.includes(`${marker}/0`));
        return {
          js: toJs.slice(js).filter((t) => !t.startsWith('sync')),
          answers: answers.slice(ans),
        };
      };
      try {
        const cache = rx.replyCache!;
        expect(cache).toBeDefined();
        install.set('req-A.', 'rep-A.');
        // Not cached yet: JS decides (and installs).
        expect((await exchange(request('req-A.'))).js).toEqual(['req-A./0']);
        expect(cache.size).toBe(1);
        // The same frame again, and one differing only outside the mask: answered by the addon.
        const again = await exchange(request('req-A.'));
        const unmasked = await exchange(request('req-A.', 7));
        expect(again.js).toEqual([]);
        expect(unmasked.js).toEqual([]);
        await waitFor(
          'both cached answers to arrive',
          () => answers.filter((t) => t === 'rep-A.').length >= 2,
        );
        expect(cache.hits).toBe(2);
        // A masked byte differs, or the packet type does (broadcast): JS.
        expect((await exchange(request('req-B.'))).js).toEqual(['req-B./0']);
        expect((await exchange(request('req-A.', 0, 'ff:ff:ff:ff:ff:ff'))).js).toEqual(['req-A./1']);
        expect(cache.hits).toBe(2);
        // Bounded: with two entries held, a third replaces the oldest (req-A to vb's MAC).
        install.set('req-B.', 'rep-B.');
        install.set('req-C.', 'rep-C.');
        await exchange(request('req-B.'));
        await exchange(request('req-C.'));
        expect(cache.size).toBe(2);
        expect((await exchange(request('req-A.'))).js).toEqual(['req-A./0']);
        // clear(): everything goes to JS again.
        install.clear();
        cache.clear();
        expect(cache.size).toBe(0);
        expect((await exchange(request('req-B.'))).js).toEqual(['req-B./0']);
        expect((await exchange(request('req-C.'))).js).toEqual(['req-C./0']);
        // Hits outlive the socket.
        const hits = cache.hits;
        expect(hits).toBe(2);
        rx.close();
        expect(cache.hits).toBe(hits);
        expect(cache.size).toBe(0);
        expect(() =>
          cache.add(request('req-D.'), { ifindex: vb.ifindex, pktType: 0 }, answer('x')),
        ).not.toThrow();
      } finally {
        rx.close();
        tx.close();
      }
    },
  );

  it('rejects a frame buffer size outside 4096..65536, naming the field and the value', () => {
    const opts = { ifindex: 1, ethertype: 0x88b7 };
    expect(() => openPacket({ ...opts, frameBufferSize: 100 })).toThrow(/frameBufferSize.*100/);
    expect(() => openPacket({ ...opts, frameBufferSize: 65537 })).toThrow(/frameBufferSize.*65537/);
    expect(() => openPacket({ ...opts, frameBufferSize: 4096.5 })).toThrow(/frameBufferSize/);
  });

  it('rejects a reply cache with an empty or oversized mask or capacity, naming the field', () => {
    const opts = { ifindex: 1, ethertype: 0x88b7 };
    expect(() => openPacket({ ...opts, replyCache: { mask: Buffer.alloc(0), capacity: 4 } })).toThrow(
      'replyCache.mask',
    );
    expect(() => openPacket({ ...opts, replyCache: { mask: Buffer.alloc(65), capacity: 4 } })).toThrow(
      'replyCache.mask',
    );
    expect(() => openPacket({ ...opts, replyCache: { mask: Buffer.alloc(8), capacity: 65 } })).toThrow(
      'replyCache.capacity',
    );
  });
});

describe('packet sockets read by a receive thread (fastPathThread)', () => {
  const ETHERTYPE = 0x88b8;
  const mac = (m: string) => Buffer.from(m.replaceAll(':', ''), 'hex');
  let vb: { ifindex: number; address: string };
  let va: { ifindex: number; address: string };
  const frame = (seq: number, len = 60) => {
    const f = Buffer.alloc(len);
    mac(vb.address).copy(f, 0);
    mac(va.address).copy(f, 6);
    f.writeUInt16BE(ETHERTYPE, 12);
    f.writeUInt32BE(seq, 14);
    return f;
  };
  // A cache that never matches what these tests send (the key wants byte 20 = 0xff): every frame
  // goes to JS through the thread's queue.
  const neverHit = () => {
    const mask = Buffer.alloc(21);
    mask[20] = 0xff;
    return { mask, capacity: 1 };
  };
  const openRx = (extra: Partial<Parameters<typeof openPacket>[0]> = {}) =>
    openPacket({
      ifindex: vb.ifindex,
      ethertype: ETHERTYPE,
      netns: b.path,
      replyCache: neverHit(),
      fastPathThread: true,
      ...extra,
    });
  const fdCount = () => readdirSync('/proc/self/fd').length;
  const threadCount = () => readdirSync('/proc/self/task').length;

  beforeAll(async () => {
    vb = (await b.ipJson<{ ifindex: number; address: string }[]>('link', 'show', 'vb'))[0]!;
    va = (await a.ipJson<{ ifindex: number; address: string }[]>('link', 'show', 'va'))[0]!;
  });

  it('delivers every frame in order with its meta, as fresh Buffers or in the reused buffer', async () => {
    const tx = openPacket({ ifindex: va.ifindex, ethertype: ETHERTYPE, netns: a.path });
    for (const reuseFrameBuffer of [false, true]) {
      const rx = openRx({ reuseFrameBuffer });
      const seen: [number, number, number, number][] = [];
      rx.onFrame((f, meta) => seen.push([f.readUInt32BE(14), f.length, meta.ifindex, meta.pktType]));
      try {
        for (let i = 0; i < 50; i++) tx.send(frame(i, 60 + i));
        await waitFor('50 frames', () => seen.length >= 50);
        expect(seen).toEqual(Array.from({ length: 50 }, (_, i) => [i, 60 + i, vb.ifindex, 0]));
        expect(rx.dropped).toBe(0);
      } finally {
        rx.close();
      }
    }
    tx.close();
  });

  it('opens and closes 200 sockets without leaking descriptors or threads', async () => {
    const fds = fdCount();
    const threads = threadCount();
    for (let i = 0; i < 200; i++) {
      const rx = openRx({ reuseFrameBuffer: i % 2 === 0 });
      rx.onFrame(() => {});
      if (i % 3 === 0) rx.unref();
      rx.close();
      rx.close(); // idempotent
    }
    // uv_close completes on the next loop turn.
    await new Promise((r) => setImmediate(r));
    expect(fdCount()).toBe(fds);
    expect(threadCount()).toBe(threads);
  });

  it('closes while frames are arriving, and calls onFrame no more after close', async () => {
    const tx = openPacket({ ifindex: va.ifindex, ethertype: ETHERTYPE, netns: a.path });
    const threads = threadCount();
    try {
      for (let round = 0; round < 20; round++) {
        const rx = openRx({ reuseFrameBuffer: round % 2 === 0 });
        let closed = false;
        let afterClose = 0;
        let got = 0;
        rx.onFrame(() => {
          if (closed) afterClose++;
          got++;
        });
        let sent = 0;
        // Keep sending from the loop while the thread receives, then close in the middle of it.
        await new Promise<void>((resolve) => {
          const burst = () => {
            for (let i = 0; i < 20; i++) tx.send(frame(sent++));
            if (got > 0 && sent > 100) {
              closed = true;
              rx.close();
              resolve();
            } else setImmediate(burst);
          };
          burst();
        });
        for (let i = 0; i < 50; i++) tx.send(frame(sent++));
        await new Promise((r) => setTimeout(r, 5));
        expect(afterClose).toBe(0);
      }
      expect(threadCount()).toBe(threads);
    } finally {
      tx.close();
    }
  });

  it('closes from inside onFrame: the frames already queued are not delivered', async () => {
    const tx = openPacket({ ifindex: va.ifindex, ethertype: ETHERTYPE, netns: a.path });
    const rx = openRx({ reuseFrameBuffer: true });
    const seen: number[] = [];
    rx.onFrame((f) => {
      seen.push(f.readUInt32BE(14));
      rx.close();
    });
    try {
      for (let i = 0; i < 20; i++) tx.send(frame(i));
      await waitFor('the first frame', () => seen.length > 0);
      await new Promise((r) => setTimeout(r, 20));
      expect(seen).toEqual([0]);
      expect(() => rx.send(frame(0))).toThrow(NativeError);
    } finally {
      rx.close();
      tx.close();
    }
  });

  it('drops frames that find the queue to JS full, counts them and reports ENOBUFS, then goes on', async () => {
    const tx = openPacket({ ifindex: va.ifindex, ethertype: ETHERTYPE, netns: a.path });
    const rx = openRx();
    const seen: number[] = [];
    const errors: NativeError[] = [];
    rx.onFrame(
      (f) => seen.push(f.readUInt32BE(14)),
      (e) => errors.push(e),
    );
    try {
      // The JS thread is busy sending (and then spinning) while the thread receives: no frame
      // can be delivered, so at most 256 wait and the rest are dropped.
      const SENT = 2000;
      for (let i = 0; i < SENT; i++) tx.send(frame(i));
      const until = Date.now() + 100;
      while (Date.now() < until);
      await waitFor('a drop report', () => errors.length > 0);
      expect(rx.dropped).toBeGreaterThan(0);
      expect(errors[0]!.code).toBe('ENOBUFS');
      expect(errors[0]!.message).toContain('dropped');
      expect(seen.length).toBeGreaterThanOrEqual(256);
      expect(seen.length + rx.dropped).toBeLessThanOrEqual(SENT);
      // In order, with gaps only.
      expect([...seen].sort((x, y) => x - y)).toEqual(seen);
      // Still receiving.
      const before = seen.length;
      tx.send(frame(SENT));
      await waitFor('a frame after the drops', () => seen.length > before);
      expect(seen.at(-1)).toBe(SENT);
    } finally {
      rx.close();
      tx.close();
    }
  });

  it('keeps the process alive while polling unless unref()ed', async () => {
    const dist = new URL('../dist/index.js', import.meta.url).href;
    const script = (unref: boolean) =>
      `const { openPacket } = await import(${JSON.stringify(dist)});
       const s = openPacket({ ifindex: ${vb.ifindex}, ethertype: ${ETHERTYPE}, netns: ${JSON.stringify(b.path)},
         replyCache: { mask: Buffer.alloc(14, 0xff), capacity: 1 }, fastPathThread: true });
       s.onFrame(() => {});
       ${unref ? 's.unref();' : 's.unref(); s.ref();'}
       process.stdout.write('polling\\n');`;
    const run = (unref: boolean) => {
      const child = spawn(process.execPath, ['--input-type=module', '-e', script(unref)], {
        stdio: ['ignore', 'pipe', 'inherit'],
      });
      const exited = once(child, 'exit').then(([code]) => code as number);
      return { child, exited };
    };
    const unrefd = run(true);
    expect(await unrefd.exited).toBe(0);
    const refd = run(false);
    await once(refd.child.stdout!, 'data');
    const still = await Promise.race([refd.exited, new Promise((r) => setTimeout(() => r('alive'), 1000))]);
    expect(still).toBe('alive');
    refd.child.kill('SIGTERM');
    await refd.exited;
  });

  it('needs a reply cache', () => {
    expect(() => openPacket({ ifindex: 1, ethertype: ETHERTYPE, fastPathThread: true })).toThrow(
      'fastPathThread',
    );
  });
});

describe('socket errors while polling', () => {
  it.each([
    ['on the event loop', false],
    ['on a receive thread', true],
  ])(
    'reports ENETDOWN when a packet socket’s interface goes down (%s), and receives again once it is up',
    async (_, fastPathThread) => {
      // Its own veth pair: taking an interface down flushes its IPv6 addresses, which other tests use.
      await vethPair(a, 'pa', b, 'pb');
      const vb = (await b.ipJson<{ ifindex: number; address: string }[]>('link', 'show', 'pb'))[0]!;
      const va = (await a.ipJson<{ ifindex: number; address: string }[]>('link', 'show', 'pa'))[0]!;
      const rx = openPacket({
        ifindex: vb.ifindex,
        ethertype: 0x88b6,
        netns: b.path,
        ...(fastPathThread
          ? { replyCache: { mask: Buffer.alloc(14, 0xff), capacity: 1 }, fastPathThread }
          : {}),
      });
      const tx = openPacket({ ifindex: va.ifindex, ethertype: 0x88b6, netns: a.path });
      const errors: string[] = [];
      const frames: Buffer[] = [];
      rx.onFrame(
        (f) => frames.push(f),
        (e) => errors.push(e.code),
      );
      try {
        await b.ip('link', 'set', 'pb', 'down');
        await waitFor('ENETDOWN on the packet socket', () => errors.includes('ENETDOWN'), {
          timeoutMs: 10_000,
        });
        await b.ip('link', 'set', 'pb', 'up');
        const frame = Buffer.alloc(60);
        Buffer.from(vb.address.replaceAll(':', ''), 'hex').copy(frame, 0);
        Buffer.from(va.address.replaceAll(':', ''), 'hex').copy(frame, 6);
        frame.writeUInt16BE(0x88b6, 12);
        await waitFor(
          'a frame after the interface came back',
          () => {
            tx.send(frame);
            return frames.length > 0;
          },
          { timeoutMs: 10_000, intervalMs: 200 },
        );
      } finally {
        rx.close();
        tx.close();
        await a.exec('ip', ['link', 'del', 'pa']);
      }
    },
  );
});

describe('TCP sockets with MD5 signatures', () => {
  /** Starts a server in `ns` on an addon-made fd; returns the server and its port. */
  async function md5Server(ns: Netns, family: 4 | 6, addr: string, peer: string, key: string) {
    const fd = createTcpSocket({
      family,
      bindAddress: addr,
      bindPort: 0,
      reuseAddr: true,
      netns: ns.path,
      md5: [{ peer, key }],
    });
    const received: string[] = [];
    const server = net.createServer((conn) => {
      conn.on('data', (d) => {
        received.push(d.toString());
        conn.end('pong');
      });
      conn.on('error', () => {});
    });
    server.listen({ fd });
    await once(server, 'listening');
    const port = (server.address() as net.AddressInfo).port;
    return { server, port, fd, received };
  }

  /** Connects from `ns` with `key`; resolves with the reply, or rejects on error/timeout. */
  function md5Client(ns: Netns, family: 4 | 6, peer: string, port: number, key: string, timeoutMs: number) {
    const fd = createTcpSocket({ family, netns: ns.path, md5: [{ peer, key }] });
    const sock = new net.Socket({ fd, readable: true, writable: true });
    return new Promise<string>((resolve, reject) => {
      let reply = '';
      const timer = setTimeout(() => {
        sock.destroy();
        reject(new Error('connect timed out'));
      }, timeoutMs);
      sock.on('data', (d) => {
        reply += d.toString();
      });
      sock.on('end', () => {
        clearTimeout(timer);
        sock.destroy();
        resolve(reply);
      });
      sock.on('error', (err) => {
        clearTimeout(timer);
        sock.destroy();
        reject(err);
      });
      sock.connect(port, peer, () => sock.write('ping'));
    });
  }

  it('connects between namespaces when both ends hold the same key (IPv4)', async () => {
    const srv = await md5Server(a, 4, '10.77.0.1', '10.77.0.2', 's3cret');
    try {
      await expect(md5Client(b, 4, '10.77.0.1', srv.port, 's3cret', 10_000)).resolves.toBe('pong');
      expect(srv.received).toEqual(['ping']);
    } finally {
      srv.server.close();
    }
  });

  it('connects between namespaces when both ends hold the same key (IPv6)', async () => {
    const srv = await md5Server(a, 6, 'fd77::1', 'fd77::2', 'v6-key');
    try {
      await expect(md5Client(b, 6, 'fd77::1', srv.port, 'v6-key', 10_000)).resolves.toBe('pong');
    } finally {
      srv.server.close();
    }
  });

  it('never connects when the keys differ: the server drops the unsigned-by-its-key SYNs', async () => {
    const srv = await md5Server(a, 4, '10.77.0.1', '10.77.0.2', 'right-key');
    try {
      await expect(md5Client(b, 4, '10.77.0.1', srv.port, 'wrong-key', 3000)).rejects.toThrow(/timed out/);
      expect(srv.received).toEqual([]);
    } finally {
      srv.server.close();
    }
  });

  it('applies a key added later to a listening socket, and a removed key stops new connections', async () => {
    const fd = createTcpSocket({
      family: 4,
      bindAddress: '10.77.0.1',
      bindPort: 0,
      reuseAddr: true,
      netns: a.path,
    });
    const server = net.createServer((conn) => {
      conn.on('data', () => conn.end('pong'));
      conn.on('error', () => {});
    });
    server.listen({ fd });
    await once(server, 'listening');
    const port = (server.address() as net.AddressInfo).port;
    try {
      setTcpMd5(fd, '10.77.0.2', 'later');
      await expect(md5Client(b, 4, '10.77.0.1', port, 'later', 10_000)).resolves.toBe('pong');
      setTcpMd5(fd, '10.77.0.2', null);
      // The server no longer expects a signature; a signed SYN is now dropped.
      await expect(md5Client(b, 4, '10.77.0.1', port, 'later', 3000)).rejects.toThrow(/timed out/);
      expect(() => setTcpMd5(fd, '10.77.0.2', null)).toThrow(expect.objectContaining({ code: 'ENOENT' }));
    } finally {
      server.close();
    }
  });

  it('closes an fd that was never handed to Node', () => {
    const fd = createTcpSocket({ family: 4 });
    closeFd(fd);
    expect(() => closeFd(fd)).toThrow(expect.objectContaining({ code: 'EBADF' }));
  });
});

// A sender independent of this addon: Python's socket.send_fds (sendmsg with SCM_RIGHTS). It sends
// "hello" with a pipe holding "piped" and, when asked, an unbound NETLINK_ROUTE socket, then
// " world" without descriptors.
const SENDER = `
import os, socket, sys
path, with_nl = sys.argv[1], sys.argv[2] == '1'
r, w = os.pipe()
os.write(w, b'piped'); os.close(w)
fds = [r]
if with_nl:
    fds.append(socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 0).detach())
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.connect(path)
socket.send_fds(s, [b'hello'], fds)
s.sendall(b' world')
s.close()
`;

describe('descriptors passed over a unix socket (recvFds) and a handed-over netlink socket', () => {
  let dir: string;
  let receives = 0;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'pnt-recvfds-'));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  /** Accepts one connection paused, runs the sender, and returns what recvFds and Node then read. */
  async function receive(withNetlink: boolean) {
    const path = join(dir, `s${++receives}.sock`);
    const server = net.createServer({ pauseOnConnect: true });
    await new Promise<void>((r) => server.listen(path, r));
    const conn = once(server, 'connection') as Promise<[net.Socket]>;
    const sender = spawn('python3', ['-c', SENDER, path, withNetlink ? '1' : '0'], { stdio: 'inherit' });
    // Listened for from the start: the sender may exit before the stream's end is read.
    const exited = once(sender, 'exit');
    try {
      const [c] = await conn;
      const fd = (c as unknown as { _handle: { fd: number } })._handle.fd;
      const got = await recvFds(fd, { maxBytes: 5, maxFds: 4, timeoutMs: 20_000 });
      const rest: Buffer[] = [];
      c.on('data', (b: Buffer) => rest.push(b));
      const ended = once(c, 'end');
      c.resume();
      await ended;
      const [code] = (await exited) as [number | null];
      expect(code).toBe(0);
      return { ...got, rest: Buffer.concat(rest).toString() };
    } finally {
      server.close();
    }
  }

  it('reads the first bytes with the descriptors sent beside them; Node reads the rest of the stream', async () => {
    const got = await receive(false);
    expect(got.data.toString()).toBe('hello');
    expect(got.truncated).toBe(false);
    expect(got.fds).toHaveLength(1);
    expect(readFileSync(`/proc/self/fd/${got.fds[0]}`, 'utf8')).toBe('piped');
    closeFd(got.fds[0]!);
    expect(got.rest).toBe(' world');
  });

  it('takes over a netlink socket made by another process and dumps links over it', async () => {
    const got = await receive(true);
    expect(got.fds).toHaveLength(2);
    closeFd(got.fds[0]!);
    const sock = openNetlink({ protocol: NETLINK_ROUTE, fd: got.fds[1]! });
    try {
      expect(sock.portId).toBeGreaterThan(0);
      const names: number[] = [];
      const done = new Promise<void>((resolve) => {
        sock.onMessage((d) => {
          for (let off = 0; off + 16 <= d.length; ) {
            const len = d.readUInt32LE(off);
            const type = d.readUInt16LE(off + 4);
            if (type === NLMSG_DONE) resolve();
            if (type === RTM_NEWLINK) names.push(type);
            if (len < 16) break;
            off += (len + 3) & ~3;
          }
        });
      });
      sock.send(linkDumpRequest(1));
      await done;
      expect(names.length).toBeGreaterThan(0); // at least lo
    } finally {
      sock.close();
    }
  });

  it('refuses to take over a descriptor that is not a netlink socket, naming it', async () => {
    const got = await receive(false);
    const fd = got.fds[0]!;
    // A pipe: not a socket at all.
    expect(() => openNetlink({ protocol: NETLINK_ROUTE, fd })).toThrow(
      new RegExp(`fd ${fd} is not an AF_NETLINK socket`),
    );
    // Refused means closed: the descriptor was the caller's to give.
    expect(() => closeFd(fd)).toThrow(/EBADF/);
  });

  it('rejects with ETIMEDOUT when nothing arrives in time', async () => {
    const path = join(dir, 'quiet.sock');
    const server = net.createServer({ pauseOnConnect: true });
    await new Promise<void>((r) => server.listen(path, r));
    const conn = once(server, 'connection') as Promise<[net.Socket]>;
    const client = net.connect(path);
    const [c] = await conn;
    const fd = (c as unknown as { _handle: { fd: number } })._handle.fd;
    await expect(recvFds(fd, { maxBytes: 5, maxFds: 1, timeoutMs: 50 })).rejects.toMatchObject({
      code: 'ETIMEDOUT',
    });
    client.destroy();
    c.destroy();
    server.close();
  });
});
