import { BlockList, isIP } from 'node:net';

export interface ProxyTrust {
  /** TRUST_PROXY: the direct peer is a reverse proxy / gateway that appends to X-Forwarded-For. */
  trustProxy: boolean;
  /** TRUST_PROXY=<n>: how many proxies stand in front (1 for `true`); ignored with TRUSTED_PROXIES. */
  proxyHops?: number;
  /** TRUSTED_PROXIES: addresses or CIDRs of every proxy in the chain (empty: only the direct peer). */
  trustedProxies: string[];
}

/** `::ffff:1.2.3.4` → `1.2.3.4`; `[::1]` → `::1`; `1.2.3.4:5678` → `1.2.3.4`; anything else → undefined. */
export function normalizeIp(raw: unknown): string | undefined {
  if (typeof raw !== 'string') return undefined;
  let v = raw.trim();
  if (v.startsWith('[')) {
    const end = v.indexOf(']');
    if (end < 0) return undefined;
    v = v.slice(1, end);
  } else if (/^\d{1,3}(\.\d{1,3}){3}:\d+$/.test(v)) {
    v = v.slice(0, v.lastIndexOf(':'));
  }
  const zone = v.indexOf('%');
  if (zone >= 0) v = v.slice(0, zone);
  const family = isIP(v);
  if (!family) return undefined;
  if (family === 6) {
    const mapped = /^::ffff:(\d{1,3}(?:\.\d{1,3}){3})$/i.exec(v);
    if (mapped) return mapped[1];
    return v.toLowerCase();
  }
  return v;
}

function headerList(value: string | string[] | undefined): string[] {
  if (value === undefined) return [];
  const joined = Array.isArray(value) ? value.join(',') : value;
  return joined
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
}

/** A matcher for TRUSTED_PROXIES entries (validated by the config loader). */
export function proxyMatcher(trusted: string[]): (ip: string) => boolean {
  if (!trusted.length) return () => false;
  const list = new BlockList();
  for (const entry of trusted) {
    const [addr, bits] = entry.split('/');
    const ip = normalizeIp(addr);
    if (!ip) continue;
    const type = isIP(ip) === 6 ? 'ipv6' : 'ipv4';
    if (bits === undefined) list.addAddress(ip, type);
    else list.addSubnet(ip, Number(bits), type);
  }
  return (ip) => list.check(ip, isIP(ip) === 6 ? 'ipv6' : 'ipv4');
}

/**
 * The client's address. Without TRUST_PROXY it is the TCP peer (X-Forwarded-For is ignored: anyone
 * can send one). With TRUST_PROXY the chain peer ← X-Forwarded-For (right to left) is walked and the
 * first hop that is not a trusted proxy is the client: with TRUSTED_PROXIES empty only the direct
 * peer is trusted, so the client is the right-most X-Forwarded-For entry (the one the gateway
 * appended); entries further left were written by the client and are never believed.
 */
export function resolveClientAddress(
  peer: string | undefined,
  forwardedFor: string | string[] | undefined,
  trust: ProxyTrust,
  isTrusted: (ip: string) => boolean = proxyMatcher(trust.trustedProxies),
): string {
  const direct = normalizeIp(peer) ?? 'unknown';
  if (!trust.trustProxy) return direct;
  const hops = headerList(forwardedFor).reverse(); // nearest first
  if (!hops.length) return direct;
  const explicit = trust.trustedProxies.length > 0;
  if (explicit && !isTrusted(direct)) return direct;
  const count = Math.max(1, trust.proxyHops ?? 1);
  let last = direct;
  for (let i = 0; i < hops.length; i++) {
    const ip = normalizeIp(hops[i]);
    if (!ip) return last; // a malformed entry: keep the last address a trusted hop vouched for
    const trusted = explicit ? isTrusted(ip) : i < count - 1; // with a hop count: the next proxies in line
    if (!trusted || i === hops.length - 1) return ip;
    last = ip;
  }
  return last;
}

/**
 * Express's `trust proxy` with the same answer as resolveClientAddress (so `req.ip`, used in logs
 * and audit records, is the address the limits count): Express walks from the TCP peer (hop 0)
 * leftwards through X-Forwarded-For and stops at the first address this returns false for.
 */
export function expressTrust(
  trust: ProxyTrust,
  isTrusted: (ip: string) => boolean = proxyMatcher(trust.trustedProxies),
): (addr: string, hop: number) => boolean {
  if (!trust.trustProxy) return () => false;
  if (trust.trustedProxies.length) return (addr) => !!normalizeIp(addr) && isTrusted(normalizeIp(addr)!);
  const count = Math.max(1, trust.proxyHops ?? 1);
  return (_addr, hop) => hop < count;
}

/**
 * The key per-address limits count under: the IPv4 address, or the /64 prefix of an IPv6 address
 * (one subscriber usually holds a whole /64, so counting single IPv6 addresses limits nothing).
 */
export function addressKey(ip: string): string {
  if (isIP(ip) !== 6) return ip;
  const expanded = expandIpv6(ip);
  return expanded ? `${expanded.slice(0, 4).join(':')}::/64` : ip;
}

function expandIpv6(ip: string): string[] | undefined {
  let v = ip.toLowerCase();
  // an embedded IPv4 tail (::a.b.c.d) becomes two groups
  const v4 = /(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(v);
  if (v4) {
    const [a, b, c, d] = v4.slice(1).map(Number);
    v = v.slice(0, v4.index) + ((a << 8) | b).toString(16) + ':' + ((c << 8) | d).toString(16);
  }
  const [head, tail] = v.split('::');
  const h = head ? head.split(':') : [];
  const t = tail !== undefined && tail ? tail.split(':') : [];
  const missing = 8 - h.length - t.length;
  if (v.includes('::') ? missing < 0 : h.length !== 8) return undefined;
  const groups = [...h, ...Array(v.includes('::') ? missing : 0).fill('0'), ...t];
  return groups.map((g) => parseInt(g || '0', 16).toString(16));
}
