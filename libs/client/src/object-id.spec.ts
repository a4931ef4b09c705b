import { isObjectIdHex, newObjectId, objectIdTime, toDocumentId } from './object-id';

describe('ObjectId ids without bson', () => {
  it('newObjectId: 24 lowercase hex characters, the time first, all distinct', () => {
    const now = Date.UTC(2025, 8, 30, 12, 0, 0);
    const ids = Array.from({ length: 1000 }, () => newObjectId(now));
    for (const id of ids) expect(isObjectIdHex(id)).toBe(true);
    expect(new Set(ids).size).toBe(ids.length);
    expect(objectIdTime(ids[0])).toBe(now);
    expect(ids[0].slice(0, 8)).toBe((now / 1000).toString(16).padStart(8, '0'));
    // same process bytes, counter in the last 3 bytes
    expect(new Set(ids.map((id) => id.slice(8, 18))).size).toBe(1);
  });

  it('toDocumentId: strings as they are; { $oid } and BSON.ObjectId-like values as lowercase hex, flagged', () => {
    expect(toDocumentId('task-1')).toEqual({ id: 'task-1' });
    expect(toDocumentId('65a1f0c2e4b0a1b2c3d4e5f6')).toEqual({ id: '65a1f0c2e4b0a1b2c3d4e5f6' });
    expect(toDocumentId({ $oid: '65A1F0C2E4B0A1B2C3D4E5F6' })).toEqual({ id: '65a1f0c2e4b0a1b2c3d4e5f6', idType: 'objectId' });
    expect(toDocumentId({ toHexString: () => '65a1f0c2e4b0a1b2c3d4e5f6' })).toEqual({ id: '65a1f0c2e4b0a1b2c3d4e5f6', idType: 'objectId' });
    expect(() => toDocumentId({ $oid: 'nope' })).toThrow(TypeError);
    expect(() => toDocumentId({ toHexString: () => 5 as unknown as string })).toThrow(TypeError);
    expect(() => toDocumentId(null as unknown as string)).toThrow(TypeError);
  });

  it('isObjectIdHex accepts only the canonical form', () => {
    expect(isObjectIdHex('65a1f0c2e4b0a1b2c3d4e5f6')).toBe(true);
    expect(isObjectIdHex('65A1F0C2E4B0A1B2C3D4E5F6')).toBe(false);
    expect(isObjectIdHex('65a1f0c2e4b0a1b2c3d4e5f')).toBe(false);
    expect(isObjectIdHex(5)).toBe(false);
  });
});
