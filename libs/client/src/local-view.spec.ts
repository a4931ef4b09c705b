import { fold, isNewer, LocalView, type ViewChange } from './local-view';
import type { DocRecord, OutboxEntry } from './storage/storage.types';

const base = (id: string, ts: number, doc: Record<string, unknown> | null = { title: id }, state: DocRecord['state'] = 'live', cursor?: string): DocRecord => ({
  collection: 'tasks',
  id,
  state: doc ? state : state === 'live' ? 'deleted' : state,
  doc: doc ? { ...doc, _id: id, sync_updated_at: ts } : null,
  ts,
  ...(cursor ? { cursor } : {}),
});
let seq = 0;
const pend = (op: OutboxEntry['operation'], id: string, data?: Record<string, unknown>, ts = 100 + seq): OutboxEntry => ({
  seq: ++seq,
  changeId: `ch-${seq}`,
  operation: op,
  collection: 'tasks',
  documentId: id,
  ...(data ? { data } : {}),
  timestamp: ts,
  createdAt: ts,
});

function viewWithEvents() {
  const view = new LocalView();
  const events: ViewChange[] = [];
  view.on('change', (c) => events.push(c));
  return { view, events };
}

describe('fold (a base with pending changes on top)', () => {
  it.each([
    ['nothing', undefined, [], null],
    ['base only', base('a', 1, { x: 1 }), [], { x: 1, _id: 'a', sync_updated_at: 1 }],
    ['tombstone', base('a', 1, null), [], null],
    ['hidden', { ...base('a', 1), state: 'hidden' as const, doc: null }, [], null],
    ['update merges fields', base('a', 1, { x: 1, y: 1 }), [pend('update', 'a', { y: 2 })], { x: 1, y: 2, _id: 'a', sync_updated_at: 1 }],
    ['update of a missing document creates it', undefined, [pend('update', 'a', { y: 2 })], { y: 2, _id: 'a' }],
    ['insert replaces', base('a', 1, { x: 1 }), [pend('insert', 'a', { z: 3 })], { z: 3, _id: 'a' }],
    ['delete then insert', base('a', 1), [pend('delete', 'a'), pend('insert', 'a', { n: 1 })], { n: 1, _id: 'a' }],
    ['insert then delete', undefined, [pend('insert', 'a', { n: 1 }), pend('delete', 'a')], null],
  ])('%s', (_name, b, p, expected) => {
    expect(fold('a', b as DocRecord | undefined, p as OutboxEntry[])).toEqual(expected);
  });
});

describe('isNewer (last write wins, the feed position breaks ties)', () => {
  it.each([
    [2, 1, undefined, undefined, true],
    [1, 2, undefined, undefined, false],
    [1, 1, undefined, undefined, true],
    [1, 1, 'c1b', 'c1a', true],
    [1, 1, 'c1a', 'c1b', false],
    [1, 1, 'c1a', 'c1a', true],
  ])('ts %d vs %d, cursors %s vs %s -> %s', (ta, tb, ca, cb, expected) => {
    expect(isNewer(base('a', ta, {}, 'live', ca), base('a', tb, {}, 'live', cb))).toBe(expected);
  });
});

describe('LocalView', () => {
  it("keeps the server's copy of a change when the ack of that same change arrives after it", () => {
    const { view } = viewWithEvents();
    const e = pend('update', 'a', { y: 2 });
    view.addPending(e);
    // the server's full document for this change (same version and feed position as the ack)
    expect(view.offer({ ...base('a', 500, { x: 1, y: 2, _updated_by: 'u1' }, 'live', 'c1a') }, 'remote')).toBe(true);
    // the ack's copy, rebuilt locally, lacks what only the server knows
    expect(view.settle(e, 'ack', base('a', 500, { y: 2 }, 'live', 'c1a'))).toBe(false);
    expect(view.getBase('tasks', 'a')?.doc).toEqual({ x: 1, y: 2, _updated_by: 'u1', _id: 'a', sync_updated_at: 500 });
    // a later version still replaces it
    const e2 = pend('update', 'a', { y: 3 });
    view.addPending(e2);
    expect(view.settle(e2, 'ack', base('a', 501, { x: 1, y: 3 }, 'live', 'c1b'))).toBe(true);
  });

  it('shows a pending change at once and keeps it over older or newer server states until settled', () => {
    const { view, events } = viewWithEvents();
    view.offer(base('a', 10, { title: 'server', done: false }), 'remote');
    const e = pend('update', 'a', { done: true }, 20);
    view.addPending(e);
    expect(view.get('tasks', 'a')).toMatchObject({ title: 'server', done: true });
    expect(view.isPending('tasks', 'a')).toBe(true);
    // another device renames it meanwhile: the rename shows, our pending field stays on top
    view.offer(base('a', 15, { title: 'renamed', done: false }), 'remote');
    expect(view.get('tasks', 'a')).toMatchObject({ title: 'renamed', done: true });
    // acknowledged: the pending change becomes the base
    view.settle(e, 'ack', base('a', 20, { title: 'renamed', done: true }));
    expect(view.isPending('tasks', 'a')).toBe(false);
    expect(view.get('tasks', 'a')).toMatchObject({ title: 'renamed', done: true });
    expect(events.map((x) => [x.source, x.pending])).toEqual([
      ['remote', false],
      ['local', true],
      ['remote', true],
      ['ack', false],
    ]);
  });

  it('ignores a server state older than the one it has (out-of-order or repeated delivery)', () => {
    const { view, events } = viewWithEvents();
    expect(view.offer(base('a', 10, { v: 'new' }), 'remote')).toBe(true);
    expect(view.offer(base('a', 5, { v: 'old' }), 'remote')).toBe(false);
    expect(view.offer(base('a', 10, { v: 'new' }), 'remote')).toBe(true); // same state again: no event
    expect(view.get('tasks', 'a')).toMatchObject({ v: 'new' });
    expect(events).toHaveLength(1);
  });

  it('a tombstone hides the document and keeps an older update from resurrecting it', () => {
    const { view } = viewWithEvents();
    view.offer(base('a', 10), 'remote');
    view.offer(base('a', 12, null), 'remote');
    expect(view.get('tasks', 'a')).toBeUndefined();
    expect(view.offer(base('a', 11, { late: true }), 'remote')).toBe(false);
    expect(view.get('tasks', 'a')).toBeUndefined();
    expect(view.list('tasks')).toEqual([]);
  });

  it('rolls a refused change back to the server state, with a rollback event', () => {
    const { view, events } = viewWithEvents();
    view.offer(base('a', 10, { owner: 'me' }), 'remote');
    const e = pend('update', 'a', { owner: 'someone-else' });
    view.addPending(e);
    view.settle(e, 'rollback');
    expect(view.get('tasks', 'a')).toMatchObject({ owner: 'me' });
    expect(events.at(-1)).toMatchObject({ source: 'rollback', doc: { owner: 'me' }, previous: { owner: 'someone-else' }, pending: false });
  });

  it('on a conflict the winning server version replaces the optimistic one (null = deleted)', () => {
    const { view } = viewWithEvents();
    view.offer(base('a', 10, { n: 1 }), 'remote');
    const e = pend('update', 'a', { n: 2 }, 11);
    view.addPending(e);
    view.settle(e, 'conflict', base('a', 30, null));
    expect(view.get('tasks', 'a')).toBeUndefined();
  });

  it('keeps later pending changes visible when an earlier one settles', () => {
    const { view } = viewWithEvents();
    const e1 = pend('insert', 'a', { n: 1 });
    const e2 = pend('update', 'a', { m: 2 });
    view.addPending(e1);
    view.addPending(e2);
    view.settle(e1, 'ack', base('a', e1.timestamp, { n: 1 }));
    expect(view.get('tasks', 'a')).toMatchObject({ n: 1, m: 2 });
    expect(view.isPending('tasks', 'a')).toBe(true);
  });

  it('lists in id order and filters with a predicate or a query string', () => {
    const { view } = viewWithEvents();
    view.offer(base('b', 1, { done: true, title: 'Buy milk' }), 'remote');
    view.offer(base('a', 1, { done: false, title: 'Walk dog' }), 'remote');
    view.addPending(pend('insert', 'c', { done: false, title: 'Buy bread' }));
    expect(view.list('tasks').map((d) => d._id)).toEqual(['a', 'b', 'c']);
    expect(view.list('tasks', (d) => d.done === false).map((d) => d._id)).toEqual(['a', 'c']);
    expect(view.list('tasks', 'title BEGINSWITH[c] $0 AND done == false', ['buy']).map((d) => d._id)).toEqual(['c']);
    expect(view.count('tasks')).toBe(3);
    expect(view.collections()).toEqual(['tasks']);
  });

  it('drop forgets the server state but not pending changes', () => {
    const { view } = viewWithEvents();
    view.offer(base('a', 1), 'remote');
    view.offer(base('b', 1), 'remote');
    view.addPending(pend('update', 'b', { x: 1 }));
    view.drop('tasks', 'a', 'reset');
    view.drop('tasks', 'b', 'reset');
    expect(view.get('tasks', 'a')).toBeUndefined();
    expect(view.get('tasks', 'b')).toEqual({ x: 1, _id: 'b' });
  });

  it('load restores bases and pending changes', () => {
    const { view, events } = viewWithEvents();
    view.load([base('a', 1, { n: 1 }), base('z', 2, null)], [pend('update', 'a', { n: 5 }), pend('insert', 'b', { k: 1 })]);
    expect(view.list('tasks').map((d) => [d._id, d.n ?? d.k])).toEqual([
      ['a', 5],
      ['b', 1],
    ]);
    expect(events.map((e) => e.source)).toEqual(['load', 'load']);
    expect(view.latestTimestamp('tasks', 'z')).toBe(2);
  });
});
