import { ObjectId } from 'mongodb';
import { candidateDbIds, documentIdOf, documentIdProblem, isObjectIdHex, newDbId, preferredDoc, readIdHint, wireIdType } from './document-id';

const HEX = '65a1f0c2e4b0a1b2c3d4e5f6';

describe('document ids', () => {
  it('only the canonical lowercase 24-hex form maps to an ObjectId', () => {
    expect(isObjectIdHex(HEX)).toBe(true);
    expect(isObjectIdHex(HEX.toUpperCase())).toBe(false);
    expect(isObjectIdHex(HEX + '0')).toBe(false);
    expect(isObjectIdHex('task-1')).toBe(false);
  });

  it.each([
    ['string', HEX, [HEX]],
    ['objectId', HEX, [new ObjectId(HEX)]],
    ['auto', HEX, [new ObjectId(HEX), HEX]],
    ['auto', 'task-1', ['task-1']],
  ] as const)('%s collection, id %s: looked up as %p', (idType, id, expected) => {
    expect(candidateDbIds(idType, id)).toEqual(expected);
  });

  it('new documents: deterministic from the collection, the tombstone and the hint', () => {
    expect(newDbId('objectId', HEX, undefined, undefined)).toEqual(new ObjectId(HEX));
    expect(newDbId('string', HEX, 'objectId', 'objectId')).toBe(HEX);
    expect(newDbId('auto', HEX, undefined, undefined)).toBe(HEX);
    expect(newDbId('auto', HEX, undefined, 'objectId')).toEqual(new ObjectId(HEX));
    expect(newDbId('auto', HEX, 'objectId', 'string')).toEqual(new ObjectId(HEX)); // a deleted ObjectId document comes back as one
    expect(newDbId('auto', 'x', undefined, 'objectId')).toBe('x');
  });

  it('refuses ids a collection cannot store', () => {
    expect(documentIdProblem('objectId', 'task-1', undefined)).toMatch(/24 lowercase hex/);
    expect(documentIdProblem('objectId', HEX.toUpperCase(), undefined)).toMatch(/24 lowercase hex/);
    expect(documentIdProblem('objectId', HEX, 'string')).toMatch(/not allowed/);
    expect(documentIdProblem('string', HEX, 'objectId')).toMatch(/not allowed/);
    expect(documentIdProblem('auto', 'task-1', 'objectId')).toMatch(/24 lowercase hex/);
    expect(documentIdProblem('auto', HEX, 'objectId')).toBeNull();
    expect(documentIdProblem('objectId', HEX, undefined)).toBeNull();
    expect(documentIdProblem('string', 'task-1', 'string')).toBeNull();
  });

  it('reads the hint of a raw change', () => {
    expect(readIdHint({ idType: 'objectId' })).toBe('objectId');
    expect(readIdHint({})).toBeUndefined();
    expect(readIdHint(null)).toBeUndefined();
    expect(readIdHint({ idType: { $ne: 1 } })).toEqual({ error: expect.any(String) });
  });

  it('maps stored ids to the wire and prefers the ObjectId document', () => {
    expect(documentIdOf(new ObjectId(HEX))).toBe(HEX);
    expect(documentIdOf('a')).toBe('a');
    expect(wireIdType(new ObjectId(HEX))).toBe('objectId');
    expect(wireIdType(HEX)).toBeUndefined();
    const s = { _id: HEX as unknown };
    const o = { _id: new ObjectId(HEX) as unknown };
    expect(preferredDoc(s, o)).toBe(o);
    expect(preferredDoc(o, s)).toBe(o);
    expect(preferredDoc(undefined, s)).toBe(s);
  });
});
