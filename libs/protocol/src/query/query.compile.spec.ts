/* compileQuery and bindQuery: the MongoDB filter, the in-memory predicate, %user variables and
 * arguments. Over ~400 lines on purpose: mostly tables of cases, one a line. */
import { InvalidQueryError } from '../errors';
import { LIMITS } from '../types';
import { bindQuery, compileQuery, MAX_QUERY_DEPTH, parseQuery, type QueryVars } from '.';

const USER: QueryVars = { user: { id: 'u1', org: 'acme', level: 3, teams: ['t1', 't2'], nested: { role: 'admin' }, empty: null } };

describe('compileQuery: MongoDB filter', () => {
  it.each<[string, Record<string, unknown>, unknown[]?]>([
    ['', {}],
    ['TRUEPREDICATE', {}],
    ['FALSEPREDICATE', { _id: { $in: [] } }],
    ['a == 1', { a: 1 }],
    ['a = "x"', { a: 'x' }],
    ['a.b.c == true', { 'a.b.c': true }],
    ['a != 1', { a: { $ne: 1 } }],
    ['a <> "x"', { a: { $ne: 'x' } }],
    ['a > 1', { a: { $gt: 1 } }],
    ['a >= 1', { a: { $gte: 1 } }],
    ['a < "m"', { a: { $lt: 'm' } }],
    ['a <= false', { a: { $lte: false } }],
    ['5 < a', { a: { $gt: 5 } }],
    ['5 >= a.b', { 'a.b': { $lte: 5 } }],
    // null: MongoDB's { a: null } matches missing and null; spelled out on dotted paths
    ['a == null', { a: null }],
    ['a != null', { a: { $ne: null } }],
    ['a.b == null', { $or: [{ 'a.b': { $exists: false } }, { 'a.b': { $type: 'null' } }] }],
    ['a.b != null', { $nor: [{ 'a.b': { $exists: false } }, { 'a.b': { $type: 'null' } }] }],
    ['a >= null', { a: null }],
    ['a <= null', { a: null }],
    ['a > null', { _id: { $in: [] } }],
    ['a < null OR b == 1', { b: 1 }],
    // negation on dotted paths goes through $nor
    ['a.b != 1', { $nor: [{ 'a.b': 1 }] }],
    ['NOT a.b > 1', { $nor: [{ 'a.b': { $gt: 1 } }] }],
    ['NOT a > 1', { a: { $not: { $gt: 1 } } }],
    ['a.b != 1 AND a.c != 2', { $nor: [{ 'a.b': 1 }, { 'a.c': 2 }] }],
    // string operators: escaped regular expressions, anchored with ^ and \z
    ['a BEGINSWITH "x.y"', { a: { $regex: '^x\\.y' } }],
    ['a ENDSWITH "x.y"', { a: { $regex: 'x\\.y\\z' } }],
    ['a CONTAINS "x.y"', { a: { $regex: 'x\\.y' } }],
    ['a CONTAINS[c] "X"', { a: { $regex: 'X', $options: 'i' } }],
    ['a BEGINSWITH[c] "ab"', { a: { $regex: '^ab', $options: 'i' } }],
    ['a ==[c] "ab"', { a: { $regex: '^ab\\z', $options: 'i' } }],
    ['a !=[c] "ab"', { a: { $not: { $regex: '^ab\\z', $options: 'i' } } }],
    ['a.b !=[c] "ab"', { $nor: [{ 'a.b': { $regex: '^ab\\z', $options: 'i' } }] }],
    ['a CONTAINS "^$.*+?()[]{}|\\\\/"', { a: { $regex: '\\^\\$\\.\\*\\+\\?\\(\\)\\[\\]\\{\\}\\|\\\\/' } }],
    ['a CONTAINS "\\u0000\\n"', { a: { $regex: '\\x{0}\\x{a}' } }],
    ['a LIKE "a*b?c"', { a: { $regex: '^a[\\s\\S]*b[\\s\\S]c\\z' } }],
    ['a LIKE "*a"', { a: { $regex: 'a\\z' } }],
    ['a LIKE "a*"', { a: { $regex: '^a' } }],
    ['a LIKE "*a*"', { a: { $regex: 'a' } }],
    ['a LIKE "**a***b**"', { a: { $regex: 'a[\\s\\S]*b' } }],
    ['a LIKE "*"', { a: { $regex: '^' } }],
    ['a LIKE ""', { a: { $regex: '^\\z' } }],
    ['a LIKE "?"', { a: { $regex: '^[\\s\\S]\\z' } }],
    ['a LIKE[c] "x.*"', { a: { $regex: '^x\\.', $options: 'i' } }],
    ['a BEGINSWITH $0', { a: { $regex: '^\\$gt' } }, ['$gt']],
    // IN
    ['a IN {1, "x", true}', { a: { $in: [1, 'x', true] } }],
    ['a IN {1, 1.0, 1}', { a: 1 }],
    ['a IN {}', { _id: { $in: [] } }],
    ['NOT a IN {}', {}],
    ['a IN {1, null}', { $or: [{ a: 1 }, { a: null }] }],
    ['NOT a IN {1, 2, null}', { a: { $nin: [1, 2], $ne: null } }],
    ['a IN $0', { a: { $in: ['x', 'y'] } }, [['x', 'y']]],
    ['a IN $0', { _id: { $in: [] } }, [[]]],
    ['a.b IN $0', { 'a.b': { $in: [1, 2] } }, [[1, 2, 1]]],
    ['"x" IN tags', { tags: 'x' }],
    // BETWEEN: one operator object on a top-level key, separate conditions on a dotted one
    ['a BETWEEN {1, 5}', { a: { $gte: 1, $lte: 5 } }],
    ['a.b BETWEEN {1, 5}', { $and: [{ 'a.b': { $gte: 1 } }, { 'a.b': { $lte: 5 } }] }],
    ['NOT a BETWEEN {1, 5}', { $or: [{ a: { $not: { $gte: 1 } } }, { a: { $not: { $lte: 5 } } }] }],
    ['a BETWEEN {"a", "m"}', { a: { $gte: 'a', $lte: 'm' } }],
    // logic
    ['a == 1 AND b == 2', { a: 1, b: 2 }],
    ['a == 1 AND a == 2', { $and: [{ a: 1 }, { a: 2 }] }],
    ['a == 1 OR b == 2', { $or: [{ a: 1 }, { b: 2 }] }],
    ['a == 1 OR b == 2 AND c == 3', { $or: [{ a: 1 }, { b: 2, c: 3 }] }],
    ['(a == 1 OR b == 2) AND c == 3', { $or: [{ a: 1 }, { b: 2 }], c: 3 }],
    ['(a == 1 OR b == 2) AND (c == 3 OR d == 4)', { $and: [{ $or: [{ a: 1 }, { b: 2 }] }, { $or: [{ c: 3 }, { d: 4 }] }] }],
    ['NOT (a == 1 OR b == 2)', { a: { $ne: 1 }, b: { $ne: 2 } }],
    ['NOT (a == 1 AND b > 2)', { $or: [{ a: { $ne: 1 } }, { b: { $not: { $gt: 2 } } }] }],
    ['NOT NOT a == 1', { a: 1 }],
    ['a == 1 AND TRUEPREDICATE', { a: 1 }],
    ['a == 1 OR TRUEPREDICATE', {}],
    ['a == 1 AND FALSEPREDICATE', { _id: { $in: [] } }],
    ['a == 1 OR FALSEPREDICATE', { a: 1 }],
    ['NOT FALSEPREDICATE', {}],
    // constants fold
    ['1 == 1 AND a == 1', { a: 1 }],
    ['1 == 2 OR a == 1', { a: 1 }],
    ['"abc" BEGINSWITH "a"', {}],
    ['2 IN {1, 3}', { _id: { $in: [] } }],
    ['2 BETWEEN {1, 3}', {}],
    ['null == null', {}],
    ['"5" == 5', { _id: { $in: [] } }],
    // arguments are values, never text
    ['a == $0', { a: '" OR 1 == 1' }, ['" OR 1 == 1']],
    ['a == $0 AND b == $1', { a: 1, b: null }, [1, null]],
    ['a == $0', { a: 0 }, [-0]],
  ])('%j compiles to %j', (text, mongo, ...rest) => {
    // (jest passes a callback after a short row: only an array is an argument list)
    const args = Array.isArray(rest[0]) ? rest[0] : undefined;
    expect(compileQuery(text, args).mongo).toEqual(mongo);
  });

  it('binds %user variables as values', () => {
    expect(compileQuery('owner == %user.id', [], USER).mongo).toEqual({ owner: 'u1' });
    expect(compileQuery('org == %user.org AND level <= %user.level', [], USER).mongo).toEqual({ org: 'acme', level: { $lte: 3 } });
    expect(compileQuery('team IN %user.teams', [], USER).mongo).toEqual({ team: { $in: ['t1', 't2'] } });
    expect(compileQuery('%user.id IN editors', [], USER).mongo).toEqual({ editors: 'u1' });
    expect(compileQuery('%user.nested.role == "admin" OR owner == %user.id', [], USER).mongo).toEqual({});
    expect(compileQuery('%user.nested.role == "root" OR owner == %user.id', [], USER).mongo).toEqual({ owner: 'u1' });
  });

  it('uses only operators that both MongoDB and FerretDB v1 implement alike', () => {
    const allowed = new Set(['$and', '$or', '$nor', '$not', '$ne', '$gt', '$gte', '$lt', '$lte', '$in', '$nin', '$regex', '$options', '$exists', '$type']);
    const texts = [
      'NOT (a.b == null OR c IN {1, null} OR d BETWEEN {1, 2}) AND e LIKE[c] "x*" AND NOT f CONTAINS "y" AND g != null',
      'a.b.c != 1 AND NOT a.b > 2 OR x ENDSWITH "z" OR NOT y IN {1, 2}',
    ];
    const walk = (v: unknown): void => {
      if (Array.isArray(v)) return v.forEach(walk);
      if (v && typeof v === 'object') {
        for (const [k, inner] of Object.entries(v)) {
          if (k.startsWith('$')) expect(allowed).toContain(k);
          walk(inner);
        }
      }
    };
    for (const t of texts) walk(compileQuery(t).mongo);
  });

  it("keeps the deepest query within MongoDB's 100 nested BSON levels", () => {
    let text = 'a.b != 0';
    for (let i = 0; i < MAX_QUERY_DEPTH; i++) text = i % 2 ? `(a.c == ${i} OR ${text})` : `(a.c != ${i} AND ${text})`;
    const depth = (v: unknown): number => (v !== null && typeof v === 'object' ? 1 + Math.max(0, ...Object.values(v).map(depth)) : 0);
    const d = depth(compileQuery(text).mongo);
    expect(d).toBeGreaterThan(MAX_QUERY_DEPTH);
    expect(d).toBeLessThan(100);
  });

  it('returns a fresh copy of the filter on each read', () => {
    const q = compileQuery('a IN {1, 2} AND b == 3');
    const f = q.mongo as { a: { $in: number[] } };
    f.a.$in.push(99);
    (q.mongo as Record<string, unknown>).b = 4;
    expect(q.mongo).toEqual({ a: { $in: [1, 2] }, b: 3 });
  });
});

/** A small corpus to check the predicate on. */
const DOCS: Record<string, Record<string, unknown>> = {
  missing: {},
  null: { a: null },
  undef: { a: undefined },
  one: { a: 1 },
  five: { a: 5 },
  half: { a: 2.5 },
  str5: { a: '5' },
  strAbc: { a: 'abc' },
  strABC: { a: 'ABC' },
  strNl: { a: 'abc\n' },
  yes: { a: true },
  no: { a: false },
  arr15: { a: [1, 5] },
  arrEmpty: { a: [] },
  arrNull: { a: [null] },
  arrStr: { a: ['x', 'abc'] },
  obj: { a: { b: 1 } },
  objNull: { a: { b: null } },
  objEmpty: { a: {} },
  objArr: { a: [{ b: 1 }, { b: 5 }] },
  objArrPartial: { a: [{ c: 1 }, { b: 5 }] },
  objArrNone: { a: [{ c: 1 }] },
  objArrNested: { a: [{ b: [2, null] }, 7] },
  proto: { a: { constructor: 1 } },
};

function matching(text: string, args?: unknown[], vars?: QueryVars): string[] {
  const q = compileQuery(text, args, vars);
  return Object.entries(DOCS)
    .filter(([, doc]) => q.test(doc))
    .map(([name]) => name);
}

describe('compileQuery: in-memory predicate (MongoDB semantics)', () => {
  it.each<[string, string[]]>([
    // equality: any element of an array; numbers by value; no cross-type equality
    ['a == 5', ['five', 'arr15']],
    ['a == 5.0', ['five', 'arr15']],
    ['a == "5"', ['str5']],
    ['a == true', ['yes']],
    ['a != 5', Object.keys(DOCS).filter((k) => !['five', 'arr15'].includes(k))],
    // null and missing
    ['a == null', ['missing', 'null', 'undef', 'arrNull']],
    ['a != null', Object.keys(DOCS).filter((k) => !['missing', 'null', 'undef', 'arrNull'].includes(k))],
    ['a.b == null', Object.keys(DOCS).filter((k) => !['obj', 'objArr', 'objArrPartial'].includes(k))],
    ['a.b != null', ['obj', 'objArr', 'objArrPartial']],
    // dotted paths through arrays of objects, terminal arrays expanded once
    ['a.b == 5', ['objArr', 'objArrPartial']],
    ['a.b == 2', ['objArrNested']],
    ['a.b > 1', ['objArr', 'objArrPartial', 'objArrNested']],
    ['a.b != 1', Object.keys(DOCS).filter((k) => !['obj', 'objArr'].includes(k))],
    ['a.constructor == 1', ['proto']],
    ['a.toString == null', Object.keys(DOCS)],
    // type brackets
    ['a > 2', ['five', 'half', 'arr15', 'objArrNested']],
    ['a < 2', ['one', 'arr15']],
    ['a > "a"', ['strAbc', 'strNl', 'arrStr']],
    ['a < "a"', ['str5', 'strABC']],
    ['a > false', ['yes']],
    ['a >= false', ['yes', 'no']],
    ['a > null', []],
    ['a >= null', ['missing', 'null', 'undef', 'arrNull']],
    // every element may satisfy a different bound
    ['a BETWEEN {2, 4}', ['half', 'arr15']],
    ['a > 4 AND a < 2', ['arr15']],
    // string operators only see strings
    ['a BEGINSWITH "ab"', ['strAbc', 'strNl', 'arrStr']],
    ['a ENDSWITH "bc"', ['strAbc', 'arrStr']],
    ['a CONTAINS "b"', ['strAbc', 'strNl', 'arrStr']],
    ['a CONTAINS[c] "B"', ['strAbc', 'strABC', 'strNl', 'arrStr']],
    ['a ==[c] "abc"', ['strAbc', 'strABC', 'arrStr']],
    ['a !=[c] "abc"', Object.keys(DOCS).filter((k) => !['strAbc', 'strABC', 'arrStr'].includes(k))],
    ['a LIKE "a?c"', ['strAbc', 'arrStr']],
    ['a LIKE "a*"', ['strAbc', 'strNl', 'arrStr']],
    ['a LIKE "*c?"', ['strNl']],
    ['a LIKE[c] "?B*"', ['strAbc', 'strABC', 'strNl', 'arrStr']],
    ['a BEGINSWITH ""', ['str5', 'strAbc', 'strABC', 'strNl', 'arrStr']],
    // IN
    ['a IN {1, "x"}', ['one', 'arr15', 'arrStr']],
    ['a IN {5, null}', ['missing', 'null', 'undef', 'five', 'arr15', 'arrNull']],
    ['NOT a IN {5, null}', Object.keys(DOCS).filter((k) => !['missing', 'null', 'undef', 'five', 'arr15', 'arrNull'].includes(k))],
    ['a IN {}', []],
    ['"x" IN a', ['arrStr']],
  ])('%j matches %j', (text, names) => {
    expect(matching(text).sort()).toEqual([...names].sort());
  });

  it('matches strings of code points, not UTF-16 units', () => {
    const q = compileQuery('a LIKE "x?y" AND b > "\\uE000"');
    expect(q.test({ a: 'x😀y', b: '😀' })).toBe(true);
    expect(q.test({ a: 'x😀y', b: '\uFFFF' })).toBe(true);
    expect(q.test({ a: 'x😀😀y', b: '😀' })).toBe(false);
  });

  it('treats wildcard characters literally outside LIKE', () => {
    expect(compileQuery('a CONTAINS "*"').test({ a: 'x*y' })).toBe(true);
    expect(compileQuery('a CONTAINS "*"').test({ a: 'xy' })).toBe(false);
    expect(compileQuery('a BEGINSWITH[c] "?"').test({ a: 'x' })).toBe(false);
    expect(compileQuery('a ==[c] "A.C"').test({ a: 'abc' })).toBe(false);
  });

  it('folds constant comparisons', () => {
    expect(compileQuery('1 < 2').alwaysTrue).toBe(true);
    expect(compileQuery('"b" > "a" AND NOT 1 IN {2}').alwaysTrue).toBe(true);
    expect(compileQuery('"abc" LIKE "a*"').alwaysTrue).toBe(true);
    expect(compileQuery('5 BETWEEN {6, 7}').alwaysFalse).toBe(true);
    expect(compileQuery('$0 == "admin" OR owner == $1', ['admin', 'u']).alwaysTrue).toBe(true);
    expect(compileQuery('$0 == "admin" OR owner == $1', ['user', 'u']).mongo).toEqual({ owner: 'u' });
  });
});

describe('bindQuery: %user variables', () => {
  it.each<[string, string[]]>([
    ['a == %user.missing', []],
    ['NOT a == %user.missing', []],
    ['a != %user.missing', []],
    ['a IN %user.missing', []],
    ['NOT a IN %user.missing', []],
    ['a == %user.empty', []],
    ['a == %user.nested.role.deeper', []],
    ['a == %user.missing OR a == 5', ['five', 'arr15']],
    ['NOT (a == %user.missing AND a == 5)', Object.keys(DOCS).filter((k) => !['five', 'arr15'].includes(k))],
    ['a IN {%user.missing, 5}', ['five', 'arr15']],
    ['NOT a IN {%user.missing, 5}', []],
    ['a BETWEEN {%user.missing, 3}', []],
    // Kleene logic: NOT (unknown AND a <= 3) holds wherever a <= 3 is false, whatever the claim
    ['NOT a BETWEEN {%user.missing, 3}', matching('NOT a <= 3')],
    ['a == %user.level', []],
    ['a < %user.level', ['one', 'half', 'arr15']],
  ])('%j matches %j', (text, names) => {
    expect(matching(text, [], USER).sort()).toEqual([...names].sort());
  });

  it('makes a comparison with a missing claim, or without a user, match nothing (and nor does its negation)', () => {
    expect(compileQuery('owner == %user.id', [], {}).alwaysFalse).toBe(true);
    expect(compileQuery('owner != %user.id', [], undefined).alwaysFalse).toBe(true);
    expect(compileQuery('NOT owner == %user.org', [], { user: { id: 'u' } }).mongo).toEqual({ _id: { $in: [] } });
  });

  it('binds one parsed tree for many users', () => {
    const tree = parseQuery('owner == %user.id OR members == %user.id');
    const a = bindQuery(tree, [], { user: { id: 'alice' } });
    const b = bindQuery(tree, [], { user: { id: 'bob' } });
    expect(a.test({ owner: 'alice' })).toBe(true);
    expect(b.test({ owner: 'alice' })).toBe(false);
    expect(b.test({ members: ['carol', 'bob'] })).toBe(true);
    expect(a.text).toBe('owner == %user.id OR members == %user.id');
  });

  it.each<[string, QueryVars, RegExp]>([
    ['a == %user.nested', USER, /%user\.nested must be a string, number, boolean or null, but is an object/],
    ['a == %user.teams', USER, /%user\.teams is an array: only IN takes an array/],
    ['a IN %user.org', USER, /IN %user\.org needs an array, but %user\.org is a string/],
    ['a BEGINSWITH %user.level', USER, /BEGINSWITH compares strings, but %user\.level is 3/],
    ['a IN %user.bad', { user: { id: 'u', bad: [{ $gt: 1 }] } }, /element 0 of %user\.bad must be a string/],
  ])('%j with bad claims fails', (text, vars, message) => {
    expect(() => compileQuery(text, [], vars)).toThrow(message);
  });
});

describe('bindQuery: arguments', () => {
  function bindError(text: string, args?: unknown[]): InvalidQueryError {
    try {
      compileQuery(text, args);
    } catch (e) {
      expect(e).toBeInstanceOf(InvalidQueryError);
      return e as InvalidQueryError;
    }
    throw new Error('expected an error');
  }

  it.each<[string, unknown[] | undefined, number, RegExp]>([
    ['a == $0', undefined, 5, /argument \$0 is missing \(0 arguments given\) at position 5/],
    ['a == 1 OR b == $2', [1, 2], 15, /argument \$2 is missing \(2 arguments given\)/],
    ['a == $0', [undefined], 5, /argument \$0 is undefined/],
    ['a == $0', [{ $gt: 1 }], 5, /argument \$0 must be a string, number, boolean or null, but is an object/],
    ['a IN $0', [[{ $gt: 1 }]], 5, /element 0 of argument \$0 must be a string, number, boolean or null/],
    ['a IN $0', [[[1]]], 5, /element 0 of argument \$0 is an array/],
    ['a IN $0', ['x'], 5, /IN argument \$0 needs an array, but argument \$0 is a string/],
    ['a IN $0', [new Array(LIMITS.maxArrayLength + 1).fill(1)], 5, /more than 10000 elements/],
    ['a == $0', [[1, 2]], 5, /argument \$0 is an array: only IN takes an array/],
    ['a == $0', [new Date(0)], 5, /is a Date/],
    ['a == $0', [Infinity], 5, /argument \$0 is Infinity: numbers must be finite/],
    ['a == $0', [NaN], 5, /numbers must be finite/],
    ['a == $0', [10n], 5, /is a bigint/],
    ['a == $0', [() => 1], 5, /is a function/],
    ['a == $0', ['\ud800'], 5, /unpaired surrogate/],
    ['a BEGINSWITH $0', [5], 13, /BEGINSWITH compares strings, but argument \$0 is 5/],
    ['a LIKE $0', [null], 7, /LIKE compares strings, but argument \$0 is null/],
    ['a ==[c] $0', [true], 8, /==\[c\] compares strings/],
    ['a BETWEEN {$0, 1}', [{}], 11, /argument \$0 must be a string/],
  ])('%s fails (case %#)', (text, args, position, message) => {
    const e = bindError(text, args);
    expect(e.position).toBe(position);
    expect(e.message).toMatch(message);
  });

  it('rejects arguments that are not an array, or too many', () => {
    expect(() => compileQuery('a == 1', 'x' as unknown as unknown[])).toThrow(/must be an array/);
    expect(() => compileQuery('a == 1', new Array(LIMITS.maxArgs + 1).fill(1))).toThrow(/too many query arguments/);
  });

  it('ignores unreferenced arguments', () => {
    expect(compileQuery('a == $1', [{ $gt: 1 }, 2]).mongo).toEqual({ a: 2 });
  });
});

describe('CompiledQuery', () => {
  it('reports TRUE/FALSE predicates', () => {
    for (const t of ['', 'TRUEPREDICATE', 'NOT FALSEPREDICATE', 'a == 1 OR TRUEPREDICATE']) {
      const q = compileQuery(t);
      expect([q.alwaysTrue, q.alwaysFalse, q.test({})]).toEqual([true, false, true]);
    }
    for (const t of ['FALSEPREDICATE', 'a IN {}', 'a > null', 'a == 1 AND FALSEPREDICATE']) {
      const q = compileQuery(t);
      expect([q.alwaysTrue, q.alwaysFalse, q.test({ a: 1 })]).toEqual([false, true, false]);
    }
    const q = compileQuery('a == 1');
    expect([q.alwaysTrue, q.alwaysFalse]).toEqual([false, false]);
  });

  it.each<[string, { path: string; value: unknown }[]]>([
    ['a == 1', [{ path: 'a', value: 1 }]],
    [
      'a == 1 AND b.c == "x" AND d > 2 AND e == null',
      [
        { path: 'a', value: 1 },
        { path: 'b.c', value: 'x' },
        { path: 'e', value: null },
      ],
    ],
    ['a IN {1} AND b IN {1, 2}', [{ path: 'a', value: 1 }]],
    ['owner == %user.id AND NOT x == 1', [{ path: 'owner', value: 'u1' }]],
    ['a == 1 OR b == 2', []],
    ['a ==[c] "x"', []],
    ['a != 1', []],
    [
      'NOT (a != 1 OR b != 2)',
      [
        { path: 'a', value: 1 },
        { path: 'b', value: 2 },
      ],
    ],
  ])('%j has equalities %j', (text, equalities) => {
    expect(compileQuery(text, [], USER).equalities).toEqual(equalities);
  });

  it('keeps the source text, or prints the tree', () => {
    expect(compileQuery('  a==1  ').text).toBe('  a==1  ');
    const manual = {
      kind: 'compare',
      op: '==',
      caseInsensitive: false,
      pos: 0,
      left: { kind: 'path', path: 'a', segments: ['a'], pos: 0 },
      right: { kind: 'literal', value: 'x', pos: 5 },
    } as const;
    expect(bindQuery(manual).text).toBe('a == "x"');
  });

  it('handles fields named like Object.prototype members as plain fields', () => {
    const doc = JSON.parse('{"__proto__": {"x": 1}, "constructor": 2}');
    const q = compileQuery('__proto__.x == 1 AND constructor == 2 AND toString == null AND __proto__.toString == null');
    expect(q.test(doc)).toBe(true);
    expect(q.test({})).toBe(false);
    expect(Object.keys(q.mongo)).toEqual(['__proto__.x', 'constructor', 'toString', '$or']);
    const single = compileQuery('__proto__ == 1 AND b == 2').mongo;
    expect(Object.keys(single)).toEqual(['__proto__', 'b']);
    expect(Object.getPrototypeOf(single)).toBe(Object.prototype);
  });

  it('tests a missing document as an empty one', () => {
    expect(compileQuery('a == null').test(undefined as unknown as Record<string, unknown>)).toBe(true);
    expect(compileQuery('a == 1').test(null as unknown as Record<string, unknown>)).toBe(false);
  });

  it('is immutable', () => {
    const q = compileQuery('a == 1');
    expect(Object.isFrozen(q)).toBe(true);
    expect(Object.isFrozen(q.equalities)).toBe(true);
  });

  it('keeps its methods on one shared prototype (no closure per compiled query) and its filter private to each read', () => {
    const a = compileQuery('a == $0', [1]);
    const b = compileQuery('b > $0 AND c == "x"', [2]);
    expect(Object.getPrototypeOf(a)).toBe(Object.getPrototypeOf(b));
    expect(Object.hasOwn(a, 'test')).toBe(false);
    expect(Object.hasOwn(a, 'mongo')).toBe(false);
    expect(b.equalities).toEqual([{ path: 'c', value: 'x' }]);
    expect(compileQuery('a > 1').equalities).toBe(compileQuery('b > 1').equalities); // the shared empty list
    const first = a.mongo;
    (first as { a: unknown }).a = 'changed';
    expect(a.mongo).toEqual({ a: 1 });
    expect(a.test({ a: 1 })).toBe(true);
    expect(a.test({ a: 2 })).toBe(false);
  });

  it('tests documents fast, without reparsing', () => {
    const q = compileQuery('(status == "open" OR status == "new") AND owner.id == $0 AND title CONTAINS[c] "x" AND NOT tags IN {"spam"}', ['u1']);
    const doc = { status: 'open', owner: { id: 'u1' }, title: 'fix X', tags: ['a', 'b'] };
    expect(q.test(doc)).toBe(true);
    const start = process.hrtime.bigint();
    let n = 0;
    for (let i = 0; i < 200_000; i++) if (q.test(doc)) n++;
    const ms = Number(process.hrtime.bigint() - start) / 1e6;
    expect(n).toBe(200_000);
    expect(ms).toBeLessThan(1000);
  });
});
