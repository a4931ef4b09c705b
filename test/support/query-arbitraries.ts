/*
 * The random documents and queries of the query-agreement property (test/query-agreement.e2e-spec.ts,
 * whose opening comment says what they avoid and why), shared with the script that measures how
 * many of the queries discriminate between documents (scripts/query-generator-stats.ts).
 */
import fc from 'fast-check';
import type { QueryPrimitive, QueryVars } from '../../libs/protocol/src/query';

export type Doc = Record<string, unknown> & { _id: string };

const KEYS = ['a', 'b', 'c'] as const;
const PATHS = ['a', 'b', 'c', 'a.b', 'a.c', 'b.a', 'c.c', 'a.b.c', 'b.a.b'];
const STRING_CHARS = [
  'a',
  'A',
  'b',
  'B',
  'é',
  'É',
  '5',
  ' ',
  '.',
  '*',
  '?',
  '^',
  '$',
  '(',
  ')',
  '[',
  ']',
  '{',
  '}',
  '|',
  '\\',
  '+',
  '/',
  '\n',
  '\u0000',
  '\uE000',
  '😀',
];
const CI_CHARS = ['a', 'A', 'b', 'B', 'é', 'É', '.', '*', '?', '\n'];

const stringArb = (chars: string[], max = 4) => fc.array(fc.constantFrom(...chars), { maxLength: max }).map((cs) => cs.join(''));
const numberArb = fc.oneof(fc.integer({ min: -3, max: 6 }), fc.constantFrom(0.5, -1.5, 2.5, 1e15, -1e-3, 2 ** 53, -0));
const scalarArb: fc.Arbitrary<QueryPrimitive> = fc.oneof(
  { weight: 2, arbitrary: fc.constant(null) },
  { weight: 2, arbitrary: fc.boolean() },
  { weight: 4, arbitrary: numberArb },
  { weight: 4, arbitrary: stringArb(STRING_CHARS) },
  { weight: 1, arbitrary: fc.constantFrom('5', 'true', 'null', '') },
);

/** A document value: scalars, objects, arrays of scalars or objects (never arrays in arrays). */
const valueArb: fc.Arbitrary<unknown> = fc.letrec<{ value: unknown; object: Record<string, unknown>; array: unknown[] }>((tie) => ({
  value: fc.oneof({ depthSize: 'small', maxDepth: 3 }, scalarArb, scalarArb, tie('object'), tie('array')),
  object: fc.dictionary(fc.constantFrom(...KEYS), tie('value'), { maxKeys: 3 }),
  array: fc.array(fc.oneof(scalarArb, tie('object')), { maxLength: 4 }),
})).value;

export const docFieldsArb = fc.dictionary(fc.constantFrom(...KEYS), valueArb, { maxKeys: 3 });

/** Hand-picked documents that pin the tricky cases, whatever the random ones hold. */
export const EDGE_DOCS: Omit<Doc, '_id'>[] = [
  {},
  { a: null },
  { a: [] },
  { a: [null] },
  { a: [1, 5] },
  { a: {} },
  { a: { b: null } },
  { a: { b: [] } },
  { a: [{ c: 1 }, { b: 5 }] },
  { a: [{ c: 1 }] },
  { a: [{ b: null }] },
  { a: [{ b: [1, null] }, 3] },
  { a: [{ b: [{ c: 3 }, { c: 'x' }] }] },
  { a: 'abc\nx', b: 'xabc\n' },
  { a: 'Été', b: 'été' },
  { a: '😀', b: '\uE000' },
  { a: 'a.b*c?(d)[e]{f}|g\\h^i$j+k/l' },
  { a: 'a\u0000b' },
  { a: true, b: false, c: 0 },
  { a: '5', b: 5, c: [5, '5'] },
];

export const VARS: QueryVars = { user: { id: 'a', org: 5, tags: ['a', 'b', null], nested: { role: 'B' } } };

// ---- queries: a spec tree with its rendering choices, rendered to text plus arguments ----------

type ValueSpec = { kind: 'lit'; v: QueryPrimitive; asArg: boolean } | { kind: 'user'; claim: string };
type Spec =
  | { t: 'const'; v: boolean; style: number }
  | { t: 'cmp'; path: string; op: string; value: ValueSpec; swap: boolean }
  | { t: 'ci'; path: string; op: string; value: ValueSpec }
  | { t: 'str'; path: string; op: string; ci: boolean; value: ValueSpec; style: number }
  | { t: 'in'; path: string; values: ValueSpec[]; asArg: boolean; style: number }
  | { t: 'inPath'; path: string; value: ValueSpec; style: number }
  | { t: 'between'; path: string; lo: ValueSpec; hi: ValueSpec; style: number }
  | { t: 'constCmp'; left: ValueSpec; op: string; right: ValueSpec }
  | { t: 'not'; c: Spec; style: number }
  | { t: 'and' | 'or'; cs: Spec[]; style: number };

const pathArb = fc.constantFrom(...PATHS);
const styleArb = fc.nat(5);
const litArb = (arb: fc.Arbitrary<QueryPrimitive>): fc.Arbitrary<ValueSpec> => fc.record({ kind: fc.constant('lit' as const), v: arb, asArg: fc.boolean() });
const anyValueArb: fc.Arbitrary<ValueSpec> = fc.oneof(
  { weight: 8, arbitrary: litArb(scalarArb) },
  { weight: 1, arbitrary: fc.constantFrom('id', 'org', 'missing', 'nested.role').map((claim): ValueSpec => ({ kind: 'user', claim })) },
);
const stringValueArb = (chars: string[]): fc.Arbitrary<ValueSpec> =>
  fc.oneof(
    { weight: 8, arbitrary: litArb(stringArb(chars, 3)) },
    { weight: 1, arbitrary: fc.constantFrom('id', 'nested.role', 'missing').map((claim): ValueSpec => ({ kind: 'user', claim })) },
  );
const likeArb = litArb(fc.array(fc.constantFrom('a', 'A', 'b', '.', '\n', '😀', '*', '?', '*', '?', '$'), { maxLength: 5 }).map((cs) => cs.join('')));

const specArb: fc.Arbitrary<Spec> = fc.letrec<{ spec: Spec; leaf: Spec }>((tie) => ({
  leaf: fc.oneof(
    { weight: 1, arbitrary: fc.record({ t: fc.constant('const' as const), v: fc.boolean(), style: styleArb }) },
    {
      weight: 6,
      arbitrary: fc.record({
        t: fc.constant('cmp' as const),
        path: pathArb,
        op: fc.constantFrom('==', '=', '!=', '<>', '>', '>=', '<', '<='),
        value: anyValueArb,
        swap: fc.boolean(),
      }),
    },
    { weight: 2, arbitrary: fc.record({ t: fc.constant('ci' as const), path: pathArb, op: fc.constantFrom('==', '!='), value: stringValueArb(CI_CHARS) }) },
    {
      weight: 4,
      arbitrary: fc.oneof(
        fc.record({
          t: fc.constant('str' as const),
          path: pathArb,
          op: fc.constantFrom('BEGINSWITH', 'ENDSWITH', 'CONTAINS'),
          ci: fc.constant(false),
          value: stringValueArb(STRING_CHARS),
          style: styleArb,
        }),
        fc.record({
          t: fc.constant('str' as const),
          path: pathArb,
          op: fc.constantFrom('BEGINSWITH', 'ENDSWITH', 'CONTAINS'),
          ci: fc.constant(true),
          value: stringValueArb(CI_CHARS),
          style: styleArb,
        }),
        fc.record({ t: fc.constant('str' as const), path: pathArb, op: fc.constant('LIKE'), ci: fc.boolean(), value: likeArb, style: styleArb }),
      ),
    },
    {
      weight: 3,
      arbitrary: fc.record({
        t: fc.constant('in' as const),
        path: pathArb,
        values: fc.array(litArb(scalarArb), { maxLength: 4 }),
        asArg: fc.boolean(),
        style: styleArb,
      }),
    },
    { weight: 1, arbitrary: pathArb.map((path): Spec => ({ t: 'in', path, values: [], asArg: false, style: 0 })) },
    { weight: 1, arbitrary: fc.record({ t: fc.constant('inPath' as const), path: pathArb, value: anyValueArb, style: styleArb }) },
    { weight: 2, arbitrary: fc.record({ t: fc.constant('between' as const), path: pathArb, lo: anyValueArb, hi: anyValueArb, style: styleArb }) },
    {
      weight: 1,
      arbitrary: fc.record({ t: fc.constant('constCmp' as const), left: anyValueArb, op: fc.constantFrom('==', '!=', '<', '>='), right: anyValueArb }),
    },
  ),
  spec: fc.oneof(
    { depthSize: 'small', maxDepth: 4, withCrossShrink: true },
    tie('leaf'),
    fc.record({ t: fc.constant('not' as const), c: tie('spec'), style: styleArb }),
    fc.record({ t: fc.constantFrom('and' as const, 'or' as const), cs: fc.array(tie('spec'), { minLength: 2, maxLength: 4 }), style: styleArb }),
  ),
})).spec;

function kw(word: string, style: number): string {
  if (style % 3 === 1) return word.toLowerCase();
  if (style % 3 === 2) return word[0] + word.slice(1).toLowerCase();
  return word;
}

function literal(v: QueryPrimitive, style = 0): string {
  if (typeof v === 'string') {
    const body = v
      .replace(/\\/g, '\\\\')
      .replace(/\n/g, '\\n')
      .replace(/\u0000/g, '\\u0000');
    return style % 2 ? `'${body.replace(/'/g, "\\'")}'` : `"${body.replace(/"/g, '\\"')}"`;
  }
  if (v === null) return kw('null', style);
  if (typeof v === 'boolean') return kw(String(v), style);
  return String(v);
}

/** Renders a spec to query text, collecting `$n` arguments. */
function render(s: Spec, args: unknown[]): string {
  const val = (v: ValueSpec, style = 0): string => {
    if (v.kind === 'user') return `%user.${v.claim}`;
    if (v.asArg) {
      args.push(v.v);
      return `$${args.length - 1}`;
    }
    return literal(v.v, style);
  };
  switch (s.t) {
    case 'const':
      return kw(s.v ? 'TRUEPREDICATE' : 'FALSEPREDICATE', s.style);
    case 'cmp':
      return s.swap ? `${val(s.value)} ${s.op} ${s.path}` : `${s.path} ${s.op} ${val(s.value)}`;
    case 'ci':
      return `${s.path} ${s.op}[c] ${val(s.value)}`;
    case 'str':
      return `${s.path} ${kw(s.op, s.style)}${s.ci ? '[c]' : ''} ${val(s.value, s.style)}`;
    case 'in': {
      if (s.asArg) {
        args.push(s.values.map((v) => (v.kind === 'lit' ? v.v : null)));
        return `${s.path} ${kw('IN', s.style)} $${args.length - 1}`;
      }
      const list = s.values.map((v) => val(v, s.style)).join(s.style % 2 ? ',' : ', ');
      return `${s.path} ${kw('IN', s.style)} {${list}}`;
    }
    case 'inPath':
      return `${val(s.value, s.style)} ${kw('IN', s.style)} ${s.path}`;
    case 'between':
      return `${s.path} ${kw('BETWEEN', s.style)} {${val(s.lo, s.style)}, ${val(s.hi, s.style)}}`;
    case 'constCmp':
      return `${val(s.left)} ${s.op} ${val(s.right)}`;
    case 'not':
      return s.style % 2 ? `!(${render(s.c, args)})` : `${kw('NOT', s.style)} (${render(s.c, args)})`;
    case 'and':
    case 'or': {
      const sym = s.t === 'and' ? '&&' : '||';
      const joiner = s.style % 2 ? ` ${sym} ` : ` ${kw(s.t.toUpperCase(), s.style)} `;
      return s.cs.map((c) => `(${render(c, args)})`).join(joiner);
    }
  }
}

/** Values a string comparison needs to be a string: claims bound to non-strings would be rejected. */
function valid(s: Spec): boolean {
  switch (s.t) {
    case 'ci':
    case 'str':
      return s.value.kind === 'lit' ? typeof s.value.v === 'string' : s.value.claim !== 'org';
    case 'not':
      return valid(s.c);
    case 'and':
    case 'or':
      return s.cs.every(valid);
    default:
      return true;
  }
}

export const queryArb = specArb.filter(valid).map((spec) => {
  const args: unknown[] = [];
  const text = render(spec, args);
  return { text, args };
});

// ---- the property -------------------------------------------------------------------------------

/** The documents of one run: the hand-picked ones, then `count - EDGE_DOCS.length` random ones drawn with `seed`. */
export function documentsFor(seed: number, count: number): Doc[] {
  const random = fc.sample(docFieldsArb, { numRuns: count - EDGE_DOCS.length, seed });
  return [...EDGE_DOCS, ...random].map((fields, i) => ({ ...fields, _id: `d${String(i).padStart(3, '0')}` }));
}
