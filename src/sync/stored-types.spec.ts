import { ObjectId } from 'mongodb';
import { keepStoredTypes } from './stored-types';

const A = new ObjectId('65a1f0c2e4b0a1b2c3d4e5f6');
const B = new ObjectId('65a1f0c2e4b0a1b2c3d4e5f7');
const WHEN = new Date(Date.UTC(2023, 0, 1));

describe('keepStoredTypes', () => {
  const stored = { _id: 'x', owner: A, when: WHEN, name: 'n', refs: [A, B], nested: { by: A, at: WHEN }, steps: [{ at: WHEN }] };

  it('a stored ObjectId or Date sent back in its JSON form keeps its type', () => {
    const out = keepStoredTypes(stored, { _id: 'x', owner: A.toHexString(), when: WHEN.toISOString(), name: 'n2', nested: { by: B.toHexString(), at: '2024-02-03T04:05:06.007Z' } });
    expect(out).toEqual({ _id: 'x', owner: A, when: WHEN, name: 'n2', nested: { by: B, at: new Date('2024-02-03T04:05:06.007Z') } });
  });

  it('arrays: element-wise, or any element of an array of only ObjectIds', () => {
    const out = keepStoredTypes(stored, { refs: [B.toHexString(), A.toHexString(), '65a1f0c2e4b0a1b2c3d4e5f8'], steps: [{ at: WHEN.toISOString() }, { at: WHEN.toISOString() }] });
    expect(out.refs).toEqual([B, A, new ObjectId('65a1f0c2e4b0a1b2c3d4e5f8')]);
    expect(out.steps).toEqual([{ at: WHEN }, { at: WHEN.toISOString() }]);
  });

  it('converts nothing else: other strings, other places, other shapes', () => {
    const out = keepStoredTypes(stored, { owner: 'not hex', when: '2023-01-01', name: A.toHexString(), extra: WHEN.toISOString(), nested: 5 });
    expect(out).toEqual({ owner: 'not hex', when: '2023-01-01', name: A.toHexString(), extra: WHEN.toISOString(), nested: 5 });
    expect(keepStoredTypes(stored, { owner: A.toHexString().toUpperCase() }).owner).toBe(A.toHexString().toUpperCase());
    expect(keepStoredTypes(stored, { when: '2023-02-30T00:00:00.000Z' }).when).toBe('2023-02-30T00:00:00.000Z');
  });

  it('a document without BSON values is returned as is', () => {
    const after = { a: '65a1f0c2e4b0a1b2c3d4e5f6' };
    expect(keepStoredTypes({ a: 'x' }, after)).toBe(after);
  });
});
