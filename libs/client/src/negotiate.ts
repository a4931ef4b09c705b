/**
 * Starting from a negotiate URL (Azure Web PubSub for Socket.IO; docs/PROTOCOL.md "Negotiate"):
 * `GET /api/negotiate` with the app's JWT answers where to connect (`endpoint`, `path`) and the
 * service's client access token (`token`, sent as `query.access_token`), valid until `expiresAt`.
 * A server not in Azure mode answers 501: the client then connects to the server itself.
 *
 * The answer comes from the network: it is read with a size bound and a time bound, and every field
 * is checked before anything connects with it. Whatever is wrong comes back as a NegotiateError
 * (code NEGOTIATE_FAILED, or UNAUTHENTICATED for a 401); the client reports it and tries again
 * after its backoff.
 */

/** Where to connect, as a negotiate answer said (or the server itself after a 501). */
export interface NegotiatedTarget {
  /** `negotiated`: through the service; `direct`: the server answered 501 (not in Azure mode). */
  via: 'negotiated' | 'direct';
  /** The Socket.IO URL (origin only) and path. */
  endpoint: string;
  path: string;
  /** The client access token for `query.access_token` (negotiated only). */
  accessToken?: string;
  /** When the access token expires (UTC ms; negotiated only). */
  expiresAt?: number;
}

/** Largest negotiate answer read (an Azure answer is well under 2 KiB). */
export const MAX_NEGOTIATE_BYTES = 64 * 1024;
const MAX_URL_CHARS = 2048;
const MAX_PATH_CHARS = 1024;
const MAX_TOKEN_CHARS = 16 * 1024;
const ENDPOINT_PROTOCOLS = new Set(['ws:', 'wss:', 'http:', 'https:']);

/** A negotiate that failed: the status (if any answer came) and why. */
export class NegotiateError extends Error {
  constructor(
    readonly code: 'NEGOTIATE_FAILED' | 'UNAUTHENTICATED',
    message: string,
    readonly status?: number,
  ) {
    super(message);
    this.name = 'NegotiateError';
  }
}

type FetchLike = (
  url: string,
  init: { method: string; headers: Record<string, string>; signal: AbortSignal; redirect: 'error' },
) => Promise<{
  status: number;
  headers: { get(name: string): string | null };
  body?: unknown;
  text(): Promise<string>;
}>;

export interface NegotiateRequest {
  /** The negotiate URL (absolute). */
  url: string;
  /** The app's JWT (Authorization: Bearer), if any. */
  token?: string;
  /** The user, sent as X-User-Id when there is no token (servers in development mode). */
  userId?: string;
  /** Where to connect after a 501: the server's URL and Socket.IO path. */
  fallback: { endpoint: string; path: string };
  timeoutMs: number;
  /** Aborts the request (disconnect()). */
  signal?: AbortSignal;
  /** Test seam; default: the global fetch. */
  fetch?: FetchLike;
}

/** Asks the negotiate URL where to connect. Never throws anything but a NegotiateError. */
export async function negotiate(req: NegotiateRequest): Promise<NegotiatedTarget> {
  const f = req.fetch ?? ((globalThis as { fetch?: FetchLike }).fetch as FetchLike | undefined);
  if (typeof f !== 'function') throw new NegotiateError('NEGOTIATE_FAILED', 'negotiateUrl needs fetch (a global fetch, Node 18+, browsers, React Native)');
  const headers: Record<string, string> = { Accept: 'application/json' };
  if (req.token) headers.Authorization = `Bearer ${req.token}`;
  else if (req.userId) headers['X-User-Id'] = req.userId;
  const ctrl = new AbortController();
  const onAbort = () => ctrl.abort();
  req.signal?.addEventListener('abort', onAbort);
  const timer = setTimeout(() => ctrl.abort(), req.timeoutMs);
  try {
    let res: Awaited<ReturnType<FetchLike>>;
    try {
      // no redirects: the answer decides where the app's JWT goes next, so it must come from here
      res = await f(req.url, { method: 'GET', headers, signal: ctrl.signal, redirect: 'error' });
    } catch (e) {
      throw new NegotiateError(
        'NEGOTIATE_FAILED',
        `negotiate ${req.url}: ${ctrl.signal.aborted && !req.signal?.aborted ? `no answer within ${req.timeoutMs} ms` : (e as Error).message}`,
      );
    }
    if (res.status === 501) {
      // not in Azure mode: connect to the server directly (the body is not needed)
      await discard(res);
      return { via: 'direct', endpoint: req.fallback.endpoint, path: req.fallback.path };
    }
    if (res.status < 200 || res.status > 299) {
      await discard(res);
      if (res.status === 401) throw new NegotiateError('UNAUTHENTICATED', `negotiate ${req.url}: 401 (token refused)`, 401);
      throw new NegotiateError('NEGOTIATE_FAILED', `negotiate ${req.url}: HTTP ${res.status}`, res.status);
    }
    const text = await readLimited(res, MAX_NEGOTIATE_BYTES).catch((e: Error) => {
      throw new NegotiateError(
        'NEGOTIATE_FAILED',
        `negotiate ${req.url}: ${ctrl.signal.aborted && !req.signal?.aborted ? `body not read within ${req.timeoutMs} ms` : e.message}`,
        res.status,
      );
    });
    return parseNegotiateAnswer(text, req.url, res.status);
  } finally {
    clearTimeout(timer);
    req.signal?.removeEventListener('abort', onAbort);
  }
}

/** Checks a negotiate answer's body; exported for tests. */
export function parseNegotiateAnswer(text: string, negotiateUrl: string, status = 200): NegotiatedTarget {
  const bad = (why: string) => new NegotiateError('NEGOTIATE_FAILED', `negotiate ${negotiateUrl}: ${why}`, status);
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    throw bad('the answer is not JSON');
  }
  if (!body || typeof body !== 'object' || Array.isArray(body)) throw bad('the answer is not a JSON object');
  const { endpoint, path, token, expiresAt } = body as Record<string, unknown>;
  if (typeof endpoint !== 'string' || !endpoint || endpoint.length > MAX_URL_CHARS) throw bad('`endpoint` is missing or not a URL');
  let u: URL;
  try {
    u = new URL(endpoint);
  } catch {
    throw bad('`endpoint` is not a URL');
  }
  if (!ENDPOINT_PROTOCOLS.has(u.protocol)) throw bad(`\`endpoint\` must be a wss:, ws:, https: or http: URL, not ${u.protocol}`);
  // Socket.IO would take a path in the URL as a namespace: the path comes in `path`
  if (u.username || u.password || (u.pathname && u.pathname !== '/') || u.search || u.hash) throw bad('`endpoint` must be an origin only (scheme, host, port)');
  // no downgrade: an https negotiate URL never sends the app's JWT over plain ws/http
  if (new URL(negotiateUrl).protocol === 'https:' && (u.protocol === 'ws:' || u.protocol === 'http:'))
    throw bad('an https negotiate URL answered an unencrypted endpoint');
  if (typeof path !== 'string' || !path.startsWith('/') || path.length > MAX_PATH_CHARS || !printable(path) || path.includes('?') || path.includes('#')) {
    throw bad('`path` is missing or not a URL path');
  }
  if (typeof token !== 'string' || !token || token.length > MAX_TOKEN_CHARS || !printable(token)) throw bad('`token` is missing or not a token');
  if (typeof expiresAt !== 'number' || !Number.isFinite(expiresAt)) throw bad('`expiresAt` is missing or not a time');
  return { via: 'negotiated', endpoint: u.origin, path, accessToken: token, expiresAt };
}

/** Visible ASCII only (no spaces, no control characters). */
function printable(s: string): boolean {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c <= 0x20 || c >= 0x7f) return false;
  }
  return true;
}

interface ByteReader {
  read(): Promise<{ done: boolean; value?: Uint8Array }>;
  cancel(): Promise<void>;
}

/** The body as text, refusing more than `max` bytes (without reading more than that). */
async function readLimited(res: Awaited<ReturnType<FetchLike>>, max: number): Promise<string> {
  const declared = Number(res.headers.get('content-length'));
  if (Number.isFinite(declared) && declared > max) {
    await discard(res);
    throw new Error(`the answer is too large (${declared} bytes, at most ${max})`);
  }
  const stream = res.body as { getReader?: () => ByteReader } | null | undefined;
  if (!stream || typeof stream.getReader !== 'function') {
    // a fetch without streams (older React Native): the length check after the fact
    const text = await res.text();
    if (text.length > max) throw new Error(`the answer is too large (more than ${max} bytes)`);
    return text;
  }
  const reader = stream.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    if (!value) continue;
    size += value.byteLength;
    if (size > max) {
      await reader.cancel().catch(() => undefined);
      throw new Error(`the answer is too large (more than ${max} bytes)`);
    }
    chunks.push(value);
  }
  const all = new Uint8Array(size);
  let at = 0;
  for (const c of chunks) {
    all.set(c, at);
    at += c.byteLength;
  }
  return new TextDecoder().decode(all);
}

async function discard(res: Awaited<ReturnType<FetchLike>>): Promise<void> {
  const stream = res.body as { cancel?: () => Promise<void> } | null | undefined;
  if (stream && typeof stream.cancel === 'function') await stream.cancel().catch(() => undefined);
}
