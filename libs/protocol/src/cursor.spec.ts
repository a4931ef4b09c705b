import { createHmac } from 'node:crypto';
import { compareCursors, configureCursorSigner, decodeCursor, encodeCursor } from './cursor';

const hmac = (key: string) => (data: string) => createHmac('sha256', key).update(data).digest('base64url');

describe('cursors', () => {
  afterAll(() => configureCursorSigner(undefined));

  it('without a signer: the unsigned format, round-tripped', () => {
    configureCursorSigner(undefined);
    expect(encodeCursor(255)).toBe('c100000000000000ff');
    expect(decodeCursor(encodeCursor(255))).toBe(255);
  });

  it('with a signer: tagged cursors that round-trip, keep string order, and cannot be made up', () => {
    configureCursorSigner(hmac('server-key-1'));
    const positions = [0, 1, 2, 15, 16, 255, 256, 65_535, 1e6, 2 ** 40, Number.MAX_SAFE_INTEGER];
    const cursors = positions.map(encodeCursor);
    for (let i = 0; i < positions.length; i++) expect(decodeCursor(cursors[i])).toBe(positions[i]);
    for (let i = 1; i < cursors.length; i++) expect(compareCursors(cursors[i - 1], cursors[i])).toBe(-1);
    const c = encodeCursor(1000);
    expect(c).toMatch(/^c2[0-9a-f]{16}\.[A-Za-z0-9_-]{11}$/);
    // another position with this tag, another tag, a truncated or extended one: refused
    expect(decodeCursor(c.replace('3e8', '3e9'))).toBeNull();
    expect(decodeCursor(`${c.slice(0, -1)}${c.endsWith('A') ? 'B' : 'A'}`)).toBeNull();
    expect(decodeCursor(c.slice(0, -1))).toBeNull();
    expect(decodeCursor(`${c}A`)).toBeNull();
    expect(decodeCursor(`c2${'0'.repeat(13)}3e8.${hmac('attacker-key')('c200000000000003e8').slice(0, 11)}`)).toBeNull();
    for (const bad of [null, 42, {}, '', 'c2', 'zz', 'c2GGGGGGGGGGGGGGGG.AAAAAAAAAAA', 'c2ffffffffffffffff.AAAAAAAAAAA']) expect(decodeCursor(bad)).toBeNull();
  });

  it('with a signer: an old unsigned cursor reads as position 0, whatever it says', () => {
    configureCursorSigner(hmac('server-key-1'));
    expect(decodeCursor('c100000000000003e8')).toBe(0);
    expect(decodeCursor('c1zzzzzzzzzzzzzzzz')).toBeNull();
  });

  it('accepts the cursors of an earlier signer of this process', () => {
    configureCursorSigner(hmac('server-key-1'));
    const old = encodeCursor(77);
    configureCursorSigner(hmac('server-key-2'));
    expect(decodeCursor(old)).toBe(77);
    expect(encodeCursor(77)).not.toBe(old);
  });
});
