import { Binary, Decimal128, ObjectId } from 'mongodb';
import { fieldTypesTemplate, keepStoredTypes } from './stored-types';

const A = new ObjectId('65a1f0c2e4b0a1b2c3d4e5f6');
const B = new ObjectId('65a1f0c2e4b0a1b2c3d4e5f7');
const WHEN = new Date(Date.UTC(2023, 0, 1));

describe('keepStoredTypes', () => {
  const stored = { _id: 'x', owner: A, when: WHEN, name: 'n', refs: [A, B], nested: { by: A, at: WHEN }, steps: [{ at: WHEN }] };

  it('a stored ObjectId or Date sent back in its JSON form keeps its type', () => {
    const out = keepStoredTypes(stored, {
      _id: 'x',
      owner: A.toHexString(),
      when: WHEN.toISOString(),
      name: 'n2',
      nested: { by: B.toHexString(), at: '2024-02-03T04:05:06.007Z' },
    });
    expect(out).toEqual({ _id: 'x', owner: A, when: WHEN, name: 'n2', nested: { by: B, at: new Date('2024-02-03T04:05:06.007Z') } });
  });

  it('arrays: element-wise, or any element of an array of only ObjectIds', () => {
    const out = keepStoredTypes(stored, {
      refs: [B.toHexString(), A.toHexString(), '65a1f0c2e4b0a1b2c3d4e5f8'],
      steps: [{ at: WHEN.toISOString() }, { at: WHEN.toISOString() }],
    });
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

describe('fieldTypesTemplate: the rules file names fields stored as ObjectIds or Dates', () => {
  const template = fieldTypesTemplate({ owner_id: 'objectId', 'meta.createdAt': 'date', tagIds: 'objectId[]', 'meta.seen': 'date[]' });

  it('converts them in a new document', () => {
    const out = keepStoredTypes(template, {
      title: 't',
      owner_id: A.toHexString(),
      tagIds: [A.toHexString(), B.toHexString()],
      meta: { createdAt: WHEN.toISOString(), seen: [WHEN.toISOString()], note: WHEN.toISOString() },
    });
    expect(out).toEqual({ title: 't', owner_id: A, tagIds: [A, B], meta: { createdAt: WHEN, seen: [WHEN], note: WHEN.toISOString() } });
  });

  it('leaves values that are not of that form, and values converted already', () => {
    expect(keepStoredTypes(template, { owner_id: 'someone', tagIds: 'x', meta: 'y' })).toEqual({ owner_id: 'someone', tagIds: 'x', meta: 'y' });
    const once = keepStoredTypes(template, { owner_id: A.toHexString() });
    expect(keepStoredTypes({ owner_id: 'a string before' }, once)).toEqual({ owner_id: A });
  });

  it('is built once per rule', () => {
    const types = { x: 'date' as const };
    expect(fieldTypesTemplate(types)).toBe(fieldTypesTemplate(types));
  });
});

describe('keepStoredTypes and other BSON values', () => {
  it('does not walk into binary or decimal values, and leaves them alone', () => {
    const bin = new Binary(Buffer.alloc(100_000));
    const stored = { blob: bin, price: Decimal128.fromString('1.50'), owner: A };
    expect(keepStoredTypes(stored, { blob: 'AAAA', price: '2', owner: B.toHexString() })).toEqual({ blob: 'AAAA', price: '2', owner: B });
    expect(keepStoredTypes({ blob: bin }, { x: 1 })).toEqual({ x: 1 });
  });
});
