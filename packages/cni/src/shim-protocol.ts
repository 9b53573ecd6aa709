// The wire format between the CNI shim (shim/podnet-cni-shim.c) and the agent that serves it
// (@podnet/agent cni-server.ts). Pure: bytes in, values out.
//
//   request = NUL-terminated records: the magic, then "pid=", "start=", "netns=<dev>:<ino>",
//             "runtime=" and every CNI_* variable as "NAME=value"; an empty record ends them; the
//             rest is the network configuration the runtime gave on stdin.
//   answer  = 'A' then "<exit code>\n<stdout>" (the agent ran the command), or 'D' then a reason
//             (the agent declines: the shim runs the standalone plugin).

export const SHIM_MAGIC = 'podnet-cni-shim/1';

/** The default socket the shim dials and the agent serves (a host path; see deploy/daemonset.yaml). */
export const DEFAULT_AGENT_SOCKET = '/var/run/podnet/cni.sock';

export interface ShimRequest {
  /** The shim's pid and start time (host pid namespace): the owner of the ADD's in-flight marker. */
  pid: number;
  pidStart: string;
  /** st_dev:st_ino of CNI_NETNS as the shim sees it; undefined when it could not stat it. */
  netnsId: string | undefined;
  /** The executable of the shim's parent (the runtime), which GC keys attachments on. */
  runtime: string;
  /** The CNI_* environment. */
  env: Record<string, string>;
  /** The network configuration (stdin). */
  stdin: string;
}

export type ShimDecode = { ok: true; request: ShimRequest } | { ok: false; error: string };

/** Decodes a complete request (the shim shuts its side down after the configuration). */
export function decodeShimRequest(buf: Buffer): ShimDecode {
  const records: string[] = [];
  let at = 0;
  for (;;) {
    const nul = buf.indexOf(0, at);
    if (nul < 0) return { ok: false, error: 'the request ends inside its header' };
    const rec = buf.subarray(at, nul).toString('utf8');
    at = nul + 1;
    if (rec === '') break;
    records.push(rec);
  }
  if (records[0] !== SHIM_MAGIC) {
    return {
      ok: false,
      error: `the request does not start with ${SHIM_MAGIC} (got ${JSON.stringify(records[0] ?? '')})`,
    };
  }
  const meta: Record<string, string> = {};
  const env: Record<string, string> = {};
  for (const r of records.slice(1)) {
    const eq = r.indexOf('=');
    if (eq <= 0) return { ok: false, error: `header record without NAME=value: ${JSON.stringify(r)}` };
    const k = r.slice(0, eq);
    const v = r.slice(eq + 1);
    if (k.startsWith('CNI_')) env[k] = v;
    else meta[k] = v;
  }
  const pid = Number(meta.pid);
  if (!Number.isInteger(pid) || pid <= 0) {
    return { ok: false, error: `pid ${JSON.stringify(meta.pid ?? '')} is not a process id` };
  }
  return {
    ok: true,
    request: {
      pid,
      pidStart: meta.start ?? '',
      netnsId: meta.netns ? meta.netns : undefined,
      runtime: meta.runtime ?? `unknown (shim pid ${pid})`,
      env,
      stdin: buf.subarray(at).toString('utf8'),
    },
  };
}

/** Encodes a request as the shim does (tests and the bench's checks). */
export function encodeShimRequest(r: ShimRequest): Buffer {
  const recs = [
    SHIM_MAGIC,
    `pid=${r.pid}`,
    `start=${r.pidStart}`,
    `netns=${r.netnsId ?? ''}`,
    `runtime=${r.runtime}`,
    ...Object.entries(r.env).map(([k, v]) => `${k}=${v}`),
    '',
  ];
  return Buffer.concat([
    Buffer.from(recs.map((s) => `${s}\0`).join(''), 'utf8'),
    Buffer.from(r.stdin, 'utf8'),
  ]);
}

/** The byte the agent sends as soon as it takes a request. */
export const SHIM_ACCEPTED = Buffer.from('A');

/** The rest of an accepted answer: the exit code, a newline, the plugin's stdout. */
export function encodeShimAnswer(exitCode: number, stdout: string): Buffer {
  return Buffer.from(`${exitCode}\n${stdout}`, 'utf8');
}

/** A refusal: the shim runs the standalone plugin instead. */
export function encodeShimDecline(reason: string): Buffer {
  return Buffer.from(`D${reason.replaceAll('\0', ' ')}`, 'utf8');
}
