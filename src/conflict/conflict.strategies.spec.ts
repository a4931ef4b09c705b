import { afterIfApplied, clampTimestamp, clientWins, fieldLastWriteWins, lastWriteWins, serverWins, userFields } from './conflict.strategies';
import { IncomingChange, StoredState } from './conflict.types';

const missing: StoredState = { doc: null, timestamp: null, deleted: false };
const stored = (
  ts: number,
  fields: Record<string, unknown> = { title: 'old', done: false },
  fieldTimes?: Record<string, number>,
  author = 'u0',
): StoredState => ({
  doc: { _id: 'd1', ...fields, sync_updated_at: ts, _updated_by: author },
  timestamp: ts,
  deleted: false,
  fieldTimes,
  author,
});
/** A version of the change's own author (u1): a tie goes to the later-arriving change. */
const own = (ts: number, fields?: Record<string, unknown>, fieldTimes?: Record<string, number>) => stored(ts, fields, fieldTimes, 'u1');
const tombstone = (ts: number, author = 'u0'): StoredState => ({ doc: null, timestamp: ts, deleted: true, author });
const change = (operation: IncomingChange['operation'], timestamp: number, data?: Record<string, unknown>): IncomingChange => ({
  operation,
  documentId: 'd1',
  data,
  timestamp,
  userId: 'u1',
});

describe('lastWriteWins', () => {
  it.each([
    ['insert into nothing', missing, change('insert', 5, { title: 'a' }), 'apply', { _id: 'd1', title: 'a', sync_updated_at: 5, _updated_by: 'u1' }],
    [
      'update of a missing doc creates it',
      missing,
      change('update', 5, { title: 'a' }),
      'apply',
      { _id: 'd1', title: 'a', sync_updated_at: 5, _updated_by: 'u1' },
    ],
    [
      'newer update merges fields',
      stored(10),
      change('update', 11, { done: true }),
      'apply',
      { _id: 'd1', title: 'old', done: true, sync_updated_at: 11, _updated_by: 'u1' },
    ],
    ['older update loses', stored(10), change('update', 9, { done: true }), 'conflict', null],
    ['equal timestamp keeps the stored version of another author', stored(10), change('update', 10, { done: true }), 'conflict', null],
    [
      'equal timestamp, same author: the later-arriving change wins',
      own(10),
      change('update', 10, { done: true }),
      'apply',
      { _id: 'd1', title: 'old', done: true, sync_updated_at: 10, _updated_by: 'u1' },
    ],
    ['equal timestamp, unknown author: the stored version stays', { ...stored(10), author: null }, change('update', 10, { done: true }), 'conflict', null],
    ['older change of the same author still loses', own(10), change('update', 9, { done: true }), 'conflict', null],
    ['delete at the same time as an own version applies', own(10), change('delete', 10), 'apply', null],
    [
      'insert at the same time as an own delete recreates',
      tombstone(10, 'u1'),
      change('insert', 10, { title: 'again' }),
      'apply',
      { _id: 'd1', title: 'again', sync_updated_at: 10, _updated_by: 'u1' },
    ],
    ["insert at the same time as another author's delete loses", tombstone(10), change('insert', 10, { title: 'again' }), 'conflict', null],
    ['insert over an existing newer doc loses', stored(10), change('insert', 3, { title: 'x' }), 'conflict', null],
    [
      'insert over an older doc is resolved like an update (no blind overwrite)',
      stored(10),
      change('insert', 12, { title: 'x' }),
      'apply',
      { _id: 'd1', title: 'x', done: false, sync_updated_at: 12, _updated_by: 'u1' },
    ],
    ['newer delete applies', stored(10), change('delete', 11), 'apply', null],
    ['older delete loses', stored(10), change('delete', 9), 'conflict', null],
    ['update older than a tombstone loses', tombstone(20), change('update', 15, { title: 'late' }), 'conflict', null],
    [
      'update newer than a tombstone recreates',
      tombstone(20),
      change('update', 25, { title: 'back' }),
      'apply',
      { _id: 'd1', title: 'back', sync_updated_at: 25, _updated_by: 'u1' },
    ],
    ['delete of a missing doc leaves a tombstone', missing, change('delete', 5), 'apply', null],
  ])('%s', (_name, s, c, kind, after) => {
    const out = lastWriteWins(s, c);
    expect(out.kind).toBe(kind);
    if (out.kind === 'apply') expect(out.after).toEqual(after);
    else {
      expect(out.current).toEqual(s.doc);
      expect(out.timestamp).toBe(s.timestamp);
    }
  });

  it('never lets the client set _id, _updated_by or sync_updated_at through data', () => {
    const out = lastWriteWins(missing, change('insert', 5, { _id: 'evil', _updated_by: 'mallory', sync_updated_at: 99, _sync_field_ts: {}, x: 1 }));
    expect(out).toEqual({ kind: 'apply', after: { _id: 'd1', x: 1, sync_updated_at: 5, _updated_by: 'u1' }, timestamp: 5 });
  });
});

describe('serverWins and clientWins', () => {
  it('server-wins keeps any stored version, applies to new documents', () => {
    expect(serverWins(stored(10), change('update', 99, { a: 1 })).kind).toBe('conflict');
    expect(serverWins(tombstone(10), change('update', 99, { a: 1 })).kind).toBe('conflict');
    expect(serverWins(missing, change('insert', 1, { a: 1 })).kind).toBe('apply');
  });
  it('client-wins always applies and moves the timestamp past the stored one', () => {
    const older = clientWins(stored(10), change('update', 3, { a: 1 }));
    expect(older.kind).toBe('apply');
    expect(older.kind === 'apply' && older.timestamp).toBe(11);
    const newer = clientWins(stored(10), change('update', 30, { a: 1 }));
    expect(newer.kind === 'apply' && newer.timestamp).toBe(30);
    expect(clientWins(tombstone(10), change('delete', 1)).kind).toBe('apply');
  });
});

describe('fieldLastWriteWins', () => {
  it('keeps concurrent edits of different fields', () => {
    // A edits title at 11, B edits done at 12 — both survive, in either arrival order
    const s0 = stored(10, { title: 'old', done: false });
    const a = fieldLastWriteWins(s0, change('update', 11, { title: 'A' }));
    expect(a.kind).toBe('apply');
    if (a.kind !== 'apply') return;
    const s1: StoredState = { doc: a.after, timestamp: a.timestamp, deleted: false, fieldTimes: a.fieldTimes };
    const b = fieldLastWriteWins(s1, change('update', 12, { done: true }));
    expect(b.kind === 'apply' && b.after).toMatchObject({ title: 'A', done: true, sync_updated_at: 12 });

    // reverse order: B (12) first, then A (11): A's title still applies because title is older than 11
    const b2 = fieldLastWriteWins(s0, change('update', 12, { done: true }));
    if (b2.kind !== 'apply') throw new Error('expected apply');
    const s2: StoredState = { doc: b2.after, timestamp: b2.timestamp, deleted: false, fieldTimes: b2.fieldTimes };
    const a2 = fieldLastWriteWins(s2, change('update', 11, { title: 'A' }));
    expect(a2.kind === 'apply' && a2.after).toMatchObject({ title: 'A', done: true, sync_updated_at: 12 });
  });

  it('applies only the fields it is newer on', () => {
    const s = stored(10, { title: 't', done: false }, { title: 20 });
    const out = fieldLastWriteWins(s, change('update', 15, { title: 'loses', done: true }));
    expect(out.kind === 'apply' && out.after).toMatchObject({ title: 't', done: true });
  });

  it('conflicts when no field is newer', () => {
    const s = stored(10, { title: 't' }, { title: 20 });
    expect(fieldLastWriteWins(s, change('update', 15, { title: 'x' })).kind).toBe('conflict');
  });

  it.each([
    [
      'same author, same time: the later-arriving edit of a field wins',
      own(10, { title: 't' }, { title: 10 }),
      change('update', 10, { title: 'x' }),
      { title: 'x' },
    ],
    ['another author, same time: the stored field stays', stored(10, { title: 't' }, { title: 10 }), change('update', 10, { title: 'x' }), null],
    [
      'same author, same time as the document, older field time: wins',
      own(10, { title: 't', done: false }, { title: 5 }),
      change('update', 10, { title: 'x', done: true }),
      { title: 'x', done: true },
    ],
    [
      'same author, a field newer than the change: only the other field applies',
      own(10, { title: 't', done: false }, { title: 12 }),
      change('update', 10, { title: 'x', done: true }),
      { title: 't', done: true },
    ],
  ])('ties: %s', (_name, s, c, want) => {
    const out = fieldLastWriteWins(s, c);
    if (want === null) expect(out.kind).toBe('conflict');
    else expect(out.kind === 'apply' && out.after).toMatchObject(want);
  });

  it('resolves deletes on the document timestamp', () => {
    expect(fieldLastWriteWins(stored(10), change('delete', 9)).kind).toBe('conflict');
    expect(fieldLastWriteWins(stored(10), change('delete', 11)).kind).toBe('apply');
    expect(fieldLastWriteWins(tombstone(10), change('update', 9, { a: 1 })).kind).toBe('conflict');
  });
});

describe('afterIfApplied (what a write rule is checked against before the conflict is resolved)', () => {
  it.each([
    ['insert into nothing', missing, change('insert', 1, { owner: 'u1' }), { _id: 'd1', owner: 'u1', sync_updated_at: 1, _updated_by: 'u1' }],
    [
      'an update merges into the stored fields, even when it would lose',
      stored(10, { owner: 'u0', title: 't' }),
      change('update', 1, { title: 'x' }),
      { _id: 'd1', owner: 'u0', title: 'x', sync_updated_at: 1, _updated_by: 'u1' },
    ],
    [
      'an update of a deleted document starts from nothing',
      tombstone(10),
      change('update', 1, { title: 'x' }),
      { _id: 'd1', title: 'x', sync_updated_at: 1, _updated_by: 'u1' },
    ],
    ['a delete produces nothing', stored(10), change('delete', 1), null],
  ])('%s', (_name, s, c, want) => {
    expect(afterIfApplied(s, c)).toEqual(want);
  });
});

describe('clampTimestamp and userFields', () => {
  it.each([
    [1000, 1000, 60, 1000],
    [1060, 1000, 60, 1060],
    [1061, 1000, 60, 1000],
    [5, 1000, 60, 5],
  ])('clamp(%d, now=%d, skew=%d) = %d', (ts, now, skew, want) => {
    expect(clampTimestamp(ts, now, skew)).toBe(want);
  });
  it('drops server-owned fields', () => {
    expect(userFields({ _id: 1, a: 1, _updated_by: 'x', sync_updated_at: 1 })).toEqual({ a: 1 });
    expect(userFields(undefined)).toEqual({});
  });
});

describe('a stored document without sync metadata (written by another application, or left by Atlas Device Sync)', () => {
  const legacy: StoredState = { doc: { _id: 'd1', title: 'old', tags: ['a'], owner: 'u0' }, timestamp: null, deleted: false };

  it.each([
    [
      'lww: an update applies and keeps the other fields',
      lastWriteWins,
      change('update', 0, { title: 'new' }),
      { _id: 'd1', title: 'new', tags: ['a'], owner: 'u0', sync_updated_at: 0, _updated_by: 'u1' },
    ],
    [
      'lww: an insert is resolved like an update',
      lastWriteWins,
      change('insert', 7, { title: 'x' }),
      { _id: 'd1', title: 'x', tags: ['a'], owner: 'u0', sync_updated_at: 7, _updated_by: 'u1' },
    ],
    ['lww: a delete applies', lastWriteWins, change('delete', 0), null],
    [
      'field: an update applies, even at timestamp 0',
      fieldLastWriteWins,
      change('update', 0, { title: 'new' }),
      { _id: 'd1', title: 'new', tags: ['a'], owner: 'u0', sync_updated_at: 0, _updated_by: 'u1' },
    ],
    ['field: a delete applies', fieldLastWriteWins, change('delete', 3), null],
    [
      'client-wins applies',
      clientWins,
      change('update', 4, { title: 'new' }),
      { _id: 'd1', title: 'new', tags: ['a'], owner: 'u0', sync_updated_at: 4, _updated_by: 'u1' },
    ],
  ])('%s', (_name, strategy, c, after) => {
    const out = strategy(legacy, c);
    expect(out.kind).toBe('apply');
    if (out.kind === 'apply') expect(out.after).toEqual(after);
  });

  it('field: the untouched fields stay older than any later change (pinned at -1, a finite number)', () => {
    const out = fieldLastWriteWins(legacy, change('update', 10, { title: 'new' }));
    expect(out.kind).toBe('apply');
    if (out.kind !== 'apply') return;
    expect(out.fieldTimes).toEqual({ title: 10, tags: -1, owner: -1 });
    // an older change of an untouched field still wins on it
    const next = fieldLastWriteWins(
      { doc: out.after, timestamp: out.timestamp, deleted: false, fieldTimes: out.fieldTimes },
      change('update', 5, { tags: ['b'], title: 'older' }),
    );
    expect(next.kind).toBe('apply');
    if (next.kind === 'apply') expect(next.after).toMatchObject({ title: 'new', tags: ['b'], sync_updated_at: 10 });
  });

  it('server-wins keeps it (it exists, so it is not new)', () => {
    expect(serverWins(legacy, change('update', 5, { title: 'new' })).kind).toBe('conflict');
  });
});
