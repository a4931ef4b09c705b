import { ObjectId } from 'mongodb';
import { AuditQuerySchema, decodeAuditCursor, encodeAuditCursor } from '../audit/audit.query';
import { quantileFromBuckets } from './console.sampler';

describe('console helpers', () => {
  it('estimates quantiles from cumulative histogram buckets (ms)', () => {
    expect(quantileFromBuckets([], 0.5)).toBeNull();
    expect(
      quantileFromBuckets(
        [
          [0.01, 0],
          [Infinity, 0],
        ],
        0.5,
      ),
    ).toBeNull();
    // 10 samples under 10 ms, 10 between 10 and 20 ms
    const b: [number, number][] = [
      [0.01, 10],
      [0.02, 20],
      [Infinity, 20],
    ];
    expect(quantileFromBuckets(b, 0.5)).toBeCloseTo(10);
    expect(quantileFromBuckets(b, 0.75)).toBeCloseTo(15);
    expect(quantileFromBuckets(b, 0.99)).toBeCloseTo(19.8);
    // beyond the last finite bucket: its bound
    expect(
      quantileFromBuckets(
        [
          [0.01, 0],
          [Infinity, 4],
        ],
        0.99,
      ),
    ).toBe(10);
  });

  it('audit cursors round-trip and refuse anything else', () => {
    const id = new ObjectId();
    const at = new Date(1_700_000_000_123);
    expect(decodeAuditCursor(encodeAuditCursor(at, id))).toEqual({ at, id });
    for (const bad of [
      '',
      'x',
      Buffer.from('1.abc').toString('base64url'),
      Buffer.from(`-1.${id.toHexString()}`).toString('base64url'),
      Buffer.from(`1.${id.toHexString()}x`).toString('base64url'),
    ])
      expect(decodeAuditCursor(bad)).toBeNull();
  });

  it('audit query: bounded, typed, no unknown parameters', () => {
    expect(AuditQuerySchema.safeParse({ limit: '200', code: 'CONFLICT', from: '0', to: '2026-01-01T00:00:00Z' }).success).toBe(true);
    for (const q of [{ limit: '201' }, { limit: '0' }, { code: 'X' }, { x: '1' }, { userId: ['a', 'b'] }, { collection: { $ne: 1 } }, { from: 'yesterday' }])
      expect(AuditQuerySchema.safeParse(q).success).toBe(false);
  });
});
