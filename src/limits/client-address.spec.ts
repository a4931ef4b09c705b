import { addressKey, expressTrust, normalizeIp, resolveClientAddress } from './client-address';

describe('normalizeIp', () => {
  it.each([
    ['1.2.3.4', '1.2.3.4'],
    ['::ffff:10.0.0.1', '10.0.0.1'],
    ['::FFFF:10.0.0.1', '10.0.0.1'],
    ['[::1]', '::1'],
    ['[2001:db8::1]:443', '2001:db8::1'],
    ['1.2.3.4:5678', '1.2.3.4'],
    ['fe80::1%eth0', 'fe80::1'],
    [' 2001:DB8::A ', '2001:db8::a'],
  ])('%s → %s', (raw, want) => expect(normalizeIp(raw)).toBe(want));

  it.each([[''], ['unknown'], ['1.2.3'], ['999.1.1.1'], ['<script>'], [undefined], [42], ['[::1']])('refuses %p', (raw) =>
    expect(normalizeIp(raw)).toBeUndefined(),
  );
});

describe('resolveClientAddress', () => {
  const off = { trustProxy: false, trustedProxies: [] };
  const oneHop = { trustProxy: true, trustedProxies: [] };
  const chain = { trustProxy: true, trustedProxies: ['10.0.0.0/8', '192.168.1.1'] };

  it('ignores X-Forwarded-For without TRUST_PROXY (anyone can send one)', () => {
    expect(resolveClientAddress('::ffff:203.0.113.9', '1.1.1.1', off)).toBe('203.0.113.9');
  });

  it('with TRUST_PROXY alone takes the right-most entry, the one the gateway appended', () => {
    expect(resolveClientAddress('10.0.0.2', '203.0.113.9', oneHop)).toBe('203.0.113.9');
    // the client wrote "6.6.6.6" itself; the gateway appended the real address
    expect(resolveClientAddress('10.0.0.2', '6.6.6.6, 203.0.113.9', oneHop)).toBe('203.0.113.9');
    expect(resolveClientAddress('10.0.0.2', ['6.6.6.6', '203.0.113.9'], oneHop)).toBe('203.0.113.9');
    expect(resolveClientAddress('10.0.0.2', undefined, oneHop)).toBe('10.0.0.2');
    expect(resolveClientAddress('10.0.0.2', 'garbage', oneHop)).toBe('10.0.0.2');
  });

  it('with TRUSTED_PROXIES walks back over trusted hops to the first untrusted one', () => {
    expect(resolveClientAddress('10.1.2.3', '6.6.6.6, 203.0.113.9, 192.168.1.1, 10.9.9.9', chain)).toBe('203.0.113.9');
    expect(resolveClientAddress('10.1.2.3', '203.0.113.9', chain)).toBe('203.0.113.9');
    // every hop trusted: the left-most
    expect(resolveClientAddress('10.1.2.3', '10.5.5.5, 10.6.6.6', chain)).toBe('10.5.5.5');
    // a malformed entry after trusted hops: the last address a trusted hop vouched for
    expect(resolveClientAddress('10.1.2.3', 'nonsense, 10.6.6.6', chain)).toBe('10.6.6.6');
  });

  it('with TRUSTED_PROXIES ignores the header when the peer itself is not trusted', () => {
    expect(resolveClientAddress('203.0.113.50', '1.1.1.1', chain)).toBe('203.0.113.50');
  });
});

describe('TRUST_PROXY as a hop count', () => {
  const two = { trustProxy: true, proxyHops: 2, trustedProxies: [] };
  it('takes the entry that many proxies back, never one further left', () => {
    // client → CDN (appends client) → ingress (appends CDN) → us
    expect(resolveClientAddress('10.0.0.2', '6.6.6.6, 203.0.113.9, 198.51.100.1', two)).toBe('203.0.113.9');
    expect(resolveClientAddress('10.0.0.2', '203.0.113.9, 198.51.100.1', two)).toBe('203.0.113.9');
    // fewer entries than proxies: the left-most there is
    expect(resolveClientAddress('10.0.0.2', '198.51.100.1', two)).toBe('198.51.100.1');
  });
});

/** Express's own resolver of req.ip (a dependency of express, untyped). */
// eslint-disable-next-line @typescript-eslint/no-require-imports
const proxyaddr = require('proxy-addr') as (req: unknown, trust: (addr: string, hop: number) => boolean) => string;

describe('expressTrust: req.ip agrees with the limits', () => {
  const req = (peer: string, xff?: string) => ({
    connection: { remoteAddress: peer },
    socket: { remoteAddress: peer },
    headers: xff ? { 'x-forwarded-for': xff } : {},
  });
  const cases: [string, { trustProxy: boolean; proxyHops?: number; trustedProxies: string[] }, string, string][] = [
    ['off', { trustProxy: false, trustedProxies: [] }, '10.0.0.2', '6.6.6.6, 203.0.113.9'],
    ['one proxy', { trustProxy: true, trustedProxies: [] }, '10.0.0.2', '6.6.6.6, 203.0.113.9'],
    ['two proxies', { trustProxy: true, proxyHops: 2, trustedProxies: [] }, '10.0.0.2', '6.6.6.6, 203.0.113.9, 198.51.100.1'],
    ['a trusted chain', { trustProxy: true, trustedProxies: ['10.0.0.0/8', '192.168.1.1'] }, '10.1.2.3', '6.6.6.6, 203.0.113.9, 192.168.1.1, 10.9.9.9'],
    ['an untrusted peer', { trustProxy: true, trustedProxies: ['10.0.0.0/8'] }, '203.0.113.50', '1.1.1.1'],
  ];
  it.each(cases)('%s', (_name, trust, peer, xff) => {
    expect(proxyaddr(req(peer, xff), expressTrust(trust))).toBe(resolveClientAddress(peer, xff, trust));
  });

  it("(Express's `trust proxy = true`, used before, believed the client-written left-most entry)", () => {
    expect(proxyaddr(req('10.0.0.2', '6.6.6.6, 203.0.113.9'), () => true)).toBe('6.6.6.6');
  });
});

describe('addressKey', () => {
  it('counts IPv4 addresses one by one and IPv6 by /64', () => {
    expect(addressKey('203.0.113.9')).toBe('203.0.113.9');
    expect(addressKey('2001:db8:1:2:aaaa::1')).toBe('2001:db8:1:2::/64');
    expect(addressKey('2001:db8:1:2:bbbb:cccc:dddd:eeee')).toBe('2001:db8:1:2::/64');
    expect(addressKey('::1')).toBe('0:0:0:0::/64');
  });
});
