// A small Kubernetes REST client for the runner (plain node:http, so it can speak over the unix
// socket that tunnels into the API server's namespace). Tests use @kubernetes/client-node.
import { request } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { LabError, LabErrorCode } from './errors.js';

export interface KubeTarget {
  /** Unix socket forwarded to the API server, or undefined to use `url`. */
  socketPath?: string;
  url?: string;
  token?: string;
  /**
   * TLS to an https `url`: CA, client certificate and key (PEM), name to check, or no check. With
   * `socketPath`, a CA (or a function giving it once known) means TLS over the socket, checked
   * against the name `localhost`.
   */
  caPem?: string | (() => string | undefined);
  certPem?: string;
  keyPem?: string;
  servername?: string;
  insecure?: boolean;
}

export interface KubeResponse {
  status: number;
  body: Record<string, unknown>;
}

export class Kube {
  constructor(private readonly target: KubeTarget) {}

  /** The node:http(s) call and its options for one request to the API server. */
  private call(method: string, path: string, headers: Record<string, string | number>) {
    const url = this.target.url ? new URL(path, this.target.url) : undefined;
    const ca = typeof this.target.caPem === 'function' ? this.target.caPem() : this.target.caPem;
    const tls =
      url?.protocol === 'https:' || (this.target.socketPath && ca)
        ? {
            ...(ca ? { ca } : {}),
            ...(this.target.certPem ? { cert: this.target.certPem } : {}),
            ...(this.target.keyPem ? { key: this.target.keyPem } : {}),
            ...(this.target.servername ? { servername: this.target.servername } : {}),
            rejectUnauthorized: !this.target.insecure,
          }
        : undefined;
    return {
      send: tls ? httpsRequest : request,
      options: {
        ...tls,
        method,
        path: url ? `${url.pathname}${url.search}` : path,
        ...(this.target.socketPath
          ? { socketPath: this.target.socketPath }
          : { host: url?.hostname, port: url?.port }),
        headers: {
          accept: 'application/json',
          ...headers,
          ...(this.target.token ? { authorization: `Bearer ${this.target.token}` } : {}),
        },
      },
    };
  }

  request(
    method: string,
    path: string,
    body?: unknown,
    contentType = 'application/json',
  ): Promise<KubeResponse> {
    const data = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    const { send, options } = this.call(
      method,
      path,
      data ? { 'content-type': contentType, 'content-length': data.length } : {},
    );
    return new Promise((resolve, reject) => {
      const req = send({ ...options, timeout: 15_000 }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let parsed: Record<string, unknown> = {};
          try {
            parsed = text ? (JSON.parse(text) as Record<string, unknown>) : {};
          } catch {
            parsed = { message: text.slice(0, 500) };
          }
          resolve({ status: res.statusCode ?? 0, body: parsed });
        });
      });
      req.on('timeout', () => req.destroy(new Error(`${method} ${path}: no answer in 15 s`)));
      req.on('error', (err) =>
        reject(new LabError(LabErrorCode.api, `API ${method} ${path}: ${err.message}`, { cause: err })),
      );
      req.end(data);
    });
  }

  /**
   * A watch (`path` with `?watch=1&resourceVersion=…`): `onEvent` gets each event as it arrives.
   * `opened` resolves once the server has answered 200 and rejects otherwise; `ended` resolves when
   * the stream ends (the server's timeout, or stop()).
   */
  watch(
    path: string,
    onEvent: (ev: { type: string; object: Record<string, unknown> }) => void,
  ): { opened: Promise<void>; ended: Promise<void>; stop: () => void } {
    const { send, options } = this.call('GET', path, {});
    let stopped = false;
    let endedResolve = () => {};
    const ended = new Promise<void>((r) => {
      endedResolve = r;
    });
    let req: ReturnType<typeof request> | undefined;
    const opened = new Promise<void>((resolve, reject) => {
      req = send(options, (res) => {
        if (res.statusCode !== 200) {
          res.resume();
          endedResolve();
          reject(new LabError(LabErrorCode.api, `API watch ${path} answered ${res.statusCode}`));
          return;
        }
        resolve();
        let buf = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => {
          buf += chunk;
          for (let nl = buf.indexOf('\n'); nl >= 0; nl = buf.indexOf('\n')) {
            const line = buf.slice(0, nl).trim();
            buf = buf.slice(nl + 1);
            if (line) onEvent(JSON.parse(line) as { type: string; object: Record<string, unknown> });
          }
        });
        res.on('end', endedResolve);
        res.on('close', endedResolve);
      });
      req.on('error', (err) => {
        endedResolve();
        if (!stopped)
          reject(new LabError(LabErrorCode.api, `API watch ${path}: ${err.message}`, { cause: err }));
      });
      req.end();
    });
    opened.catch(() => {});
    return {
      opened,
      ended,
      stop: () => {
        stopped = true;
        req?.destroy();
        endedResolve();
      },
    };
  }

  private async expect(method: string, path: string, ok: number[], body?: unknown, ct?: string) {
    const r = await this.request(method, path, body, ct);
    if (!ok.includes(r.status)) {
      const msg = typeof r.body.message === 'string' ? r.body.message : JSON.stringify(r.body).slice(0, 300);
      throw new LabError(LabErrorCode.api, `API ${method} ${path} answered ${r.status}: ${msg}`);
    }
    return r;
  }

  /** Creates the object; an existing one is replaced by a merge patch of the same content. */
  async apply(collection: string, obj: { metadata: { name: string } }): Promise<Record<string, unknown>> {
    const r = await this.request('POST', collection, obj);
    if (r.status === 201 || r.status === 200) return r.body;
    if (r.status === 409) {
      const p = await this.expect(
        'PATCH',
        `${collection}/${obj.metadata.name}`,
        [200],
        obj,
        'application/merge-patch+json',
      );
      return p.body;
    }
    const msg = typeof r.body.message === 'string' ? r.body.message : JSON.stringify(r.body).slice(0, 300);
    throw new LabError(
      LabErrorCode.api,
      `API POST ${collection} (${obj.metadata.name}) answered ${r.status}: ${msg}`,
    );
  }

  async get(path: string): Promise<Record<string, unknown> | undefined> {
    const r = await this.expect('GET', path, [200, 404]);
    return r.status === 404 ? undefined : r.body;
  }

  async list(path: string): Promise<Record<string, unknown>[]> {
    const r = await this.expect('GET', path, [200]);
    return Array.isArray(r.body.items) ? (r.body.items as Record<string, unknown>[]) : [];
  }

  async delete(path: string): Promise<boolean> {
    const r = await this.expect('DELETE', path, [200, 202, 404]);
    return r.status !== 404;
  }
}
