import { BSON } from 'mongodb';
import type { FeedEntry } from '../feed/change-feed.repository';
import { toDelivered } from '../feed/feed-entries';
import { ClusterCodecError, decodeMessage, deriveBusKey, encodeBatch, isDeliverableEntry } from './cluster.codec';

const CAP = 1024 * 1024;

function entry(i: number, extra: Partial<FeedEntry> = {}): FeedEntry {
  return {
    _id: 1000 + i,
    changeId: `c-${i}`,
    state: 'applied',
    collection: 'tasks',
    documentId: `d-${i}`,
    docKey: `tasks:d-${i}`,
    operation: 'update',
    after: { _id: `d-${i}`, title: `t${i}`, n: i, sync_updated_at: 1_700_000_000_000 + i, _updated_by: 'u1', _sync_field_ts: { title: 1 } },
    before: { _id: `d-${i}`, title: 'old', n: i - 1, sync_updated_at: 1_700_000_000_000 },
    timestamp: 1_700_000_000_000 + i,
    prevTimestamp: 1_700_000_000_000,
    userId: 'u1',
    serverTimestamp: 1_700_000_000_500 + i,
    clientAddress: '127.0.0.1',
    createdAt: new Date(1_700_000_000_500 + i),
    ...extra,
  };
}

describe('cluster codec', () => {
  it('round-trips entries exactly: Dates, Binary, ObjectId, Decimal128, nested values, nulls', () => {
    const oid = new BSON.ObjectId();
    const rich = entry(1, {
      after: {
        _id: 'd-1',
        when: new Date('2024-02-29T12:34:56.789Z'),
        blob: new BSON.Binary(Buffer.from([0, 1, 2, 254, 255])),
        owner: oid,
        price: BSON.Decimal128.fromString('12.50'),
        nested: { list: [1, 'two', { three: 3 }, null, [true, false]], deep: { x: -1.25, big: 2 ** 40 } },
        empty: {},
        unicode: 'héllo ✓ 🚀',
        nil: null,
        sync_updated_at: 1_700_000_000_001,
      },
    });
    const del = entry(2, { operation: 'delete', after: null, before: { _id: 'd-2', title: 'gone' } });
    const ins = entry(3, { operation: 'insert', before: null });
    const { messages, dropped } = encodeBatch('node-a', [rich, del, ins], CAP);
    expect(dropped).toEqual([]);
    expect(messages).toHaveLength(1);
    const out = decodeMessage(messages[0], CAP);
    expect(out.node).toBe('node-a');
    expect(out.invalid).toBe(0);
    expect(out.entries).toEqual([rich, del, ins]);
    const got = out.entries[0].after!;
    expect(got.when).toBeInstanceOf(Date);
    expect((got.when as Date).toISOString()).toBe('2024-02-29T12:34:56.789Z');
    expect(got.blob).toBeInstanceOf(BSON.Binary);
    expect(Buffer.from((got.blob as BSON.Binary).buffer)).toEqual(Buffer.from([0, 1, 2, 254, 255]));
    expect((got.owner as BSON.ObjectId).equals(oid)).toBe(true);
    expect(String(got.price)).toBe('12.50');
    expect(out.entries[0].createdAt).toBeInstanceOf(Date);
    expect(out.entries[0].createdAt.getTime()).toBe(rich.createdAt.getTime());
  });

  it('what a client receives is the same for the decoded entry as for the original', () => {
    const samples = [entry(1), entry(2, { operation: 'delete', after: null }), entry(3, { operation: 'insert', before: null })];
    const [msg] = encodeBatch('n', samples, CAP).messages;
    const back = decodeMessage(msg, CAP).entries;
    samples.forEach((e, i) => {
      expect(JSON.stringify(toDelivered(back[i]))).toBe(JSON.stringify(toDelivered(e)));
      expect(JSON.stringify(toDelivered(back[i], true))).toBe(JSON.stringify(toDelivered(e, true)));
    });
    expect(toDelivered(back[0]).data).not.toHaveProperty('_sync_field_ts');
  });

  it('leaves undefined properties out, as JSON would', () => {
    const e = entry(1, { before: undefined, clientAddress: undefined });
    const [msg] = encodeBatch('n', [e], CAP).messages;
    const back = decodeMessage(msg, CAP).entries[0];
    expect('before' in back).toBe(false);
    expect('clientAddress' in back).toBe(false);
  });

  it('splits a batch over the cap into ordered messages under it', () => {
    const big = 'x'.repeat(20_000);
    const entries = Array.from({ length: 40 }, (_, i) => entry(i, { after: { _id: `d-${i}`, big } }));
    const cap = 100_000;
    const { messages, dropped } = encodeBatch('n', entries, cap);
    expect(dropped).toEqual([]);
    expect(messages.length).toBeGreaterThan(1);
    expect(messages.every((m) => m.length <= cap)).toBe(true);
    const back = messages.flatMap((m) => decodeMessage(m, cap).entries);
    expect(back.map((e) => e._id)).toEqual(entries.map((e) => e._id));
  });

  it('drops an entry too large on its own, keeps the others in order', () => {
    const cap = 64 * 1024;
    const entries = [entry(1), entry(2, { after: { _id: 'd-2', big: 'y'.repeat(cap) } }), entry(3)];
    const { messages, dropped } = encodeBatch('n', entries, cap);
    expect(dropped).toEqual([expect.objectContaining({ reason: 'too_large', entry: entries[1], bytes: expect.any(Number) })]);
    expect(dropped[0].bytes!).toBeGreaterThan(cap);
    const back = messages.flatMap((m) => decodeMessage(m, cap).entries);
    expect(back.map((e) => e._id)).toEqual([1001, 1003]);
  });

  it('reports an entry BSON refuses instead of throwing', () => {
    const { messages, dropped } = encodeBatch('n', [entry(1), entry(2, { after: { 'bad\u0000key': 1 } })], CAP);
    expect(dropped).toEqual([expect.objectContaining({ reason: 'unserializable', error: expect.stringMatching(/null bytes/) })]);
    expect(messages.flatMap((m) => decodeMessage(m, CAP).entries).map((e) => e._id)).toEqual([1001]);
  });

  it('an empty batch is no message', () => {
    expect(encodeBatch('n', [], CAP)).toEqual({ messages: [], dropped: [] });
  });

  it('refuses a received message over the cap, without parsing it', () => {
    const [msg] = encodeBatch('n', [entry(1)], CAP).messages;
    expect(() => decodeMessage(msg, msg.length - 1)).toThrow(expect.objectContaining({ reason: 'too_large' }));
  });

  it.each([
    ['garbage', Buffer.from('not bson at all')],
    ['empty', Buffer.alloc(0)],
    ['JSON', Buffer.from(JSON.stringify({ v: 1, node: 'x', entries: [] }))],
    ['truncated', encodeBatch('n', [entry(1)], CAP).messages[0].subarray(0, 40)],
    ['wrong version', Buffer.from(BSON.serialize({ v: 2, node: 'x', entries: [] }))],
    ['no node', Buffer.from(BSON.serialize({ v: 1, entries: [] }))],
    ['entries not an array', Buffer.from(BSON.serialize({ v: 1, node: 'x', entries: { a: 1 } }))],
  ])('refuses an unparsable message (%s) with a ClusterCodecError', (_name, buf) => {
    let err: unknown;
    try {
      decodeMessage(buf, CAP);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ClusterCodecError);
    expect((err as ClusterCodecError).reason).toBe('unparsable');
  });

  it('leaves out malformed entries of a valid message and counts them', () => {
    const good = entry(1);
    const bad = [
      { ...entry(2), _id: 'x' },
      { ...entry(3), operation: 'drop' },
      { ...entry(4), collection: undefined },
      { ...entry(5), after: 'str' },
      { ...entry(6), serverTimestamp: null },
      'not an object',
    ];
    const buf = Buffer.from(BSON.serialize({ v: 1, node: 'x', entries: [good, ...bad] }, { ignoreUndefined: true }));
    const out = decodeMessage(buf, CAP);
    expect(out.entries).toEqual([good]);
    expect(out.invalid).toBe(bad.length);
  });

  it('isDeliverableEntry accepts what the server writes', () => {
    expect(isDeliverableEntry(entry(1))).toBe(true);
    expect(isDeliverableEntry(entry(1, { operation: 'delete', after: null }))).toBe(true);
    expect(isDeliverableEntry(null)).toBe(false);
  });
});

describe('cluster codec: signed messages', () => {
  const key = deriveBusKey('a-shared-secret-a-shared-secret-a-shared', 'sync:db:changes');
  const other = deriveBusKey('a-shared-secret-a-shared-secret-a-shared', 'sync:otherdb:changes');

  it('round-trips with the key and refuses unsigned, forged, tampered and stale messages', () => {
    const e = [entry(1), entry(2)];
    const [msg] = encodeBatch('node-a', e, CAP, key).messages;
    expect(decodeMessage(msg, CAP, key).entries).toEqual(e);
    const reason = (buf: Buffer, k = key, now?: number) => {
      try {
        decodeMessage(buf, CAP, k, now);
      } catch (err) {
        return (err as ClusterCodecError).reason;
      }
      return 'accepted';
    };
    expect(reason(encodeBatch('node-a', e, CAP).messages[0])).toBe('unsigned');
    expect(reason(msg, other)).toBe('forged'); // a key per channel: another deployment's messages do not pass
    const tampered = Buffer.from(msg);
    tampered[tampered.length - 10] ^= 1;
    expect(reason(tampered)).toBe('forged');
    expect(reason(Buffer.from('SBS2'))).toBe('unsigned');
    expect(reason(msg, key, Date.now() + 10 * 60_000)).toBe('stale');
  });

  it('counts the signature in the size cap', () => {
    const { messages } = encodeBatch(
      'node-a',
      Array.from({ length: 50 }, (_, i) => entry(i)),
      4096,
      key,
    );
    for (const m of messages) expect(m.length).toBeLessThanOrEqual(4096);
  });
});
