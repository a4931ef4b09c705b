import fc from 'fast-check';
import { InvalidQueryError } from '../errors';
import { LIMITS } from '../types';
import { formatQuery, MAX_QUERY_DEPTH, parseQuery, usesUserVars } from '.';

/** The tree printed back: shows normalisation, precedence (as parentheses) and literal values. */
const canon = (text: string) => formatQuery(parseQuery(text));

function parseError(text: string): InvalidQueryError {
  try {
    parseQuery(text);
  } catch (e) {
    expect(e).toBeInstanceOf(InvalidQueryError);
    return e as InvalidQueryError;
  }
  throw new Error(`expected ${JSON.stringify(text)} not to parse`);
}

describe('parseQuery: grammar', () => {
  it.each([
    // comparison operators and their synonyms
    ['a == 1', 'a == 1'],
    ['a = 1', 'a == 1'],
    ['a != 1', 'a != 1'],
    ['a <> 1', 'a != 1'],
    ['a > 1', 'a > 1'],
    ['a >= 1', 'a >= 1'],
    ['a < 1', 'a < 1'],
    ['a <= 1', 'a <= 1'],
    ['a==1', 'a == 1'],
    ['  a\t==\n1  ', 'a == 1'],
    // string operators, [c]
    ['name BEGINSWITH "ab"', 'name BEGINSWITH "ab"'],
    ['name ENDSWITH "ab"', 'name ENDSWITH "ab"'],
    ['name CONTAINS "ab"', 'name CONTAINS "ab"'],
    ['name LIKE "a*b?"', 'name LIKE "a*b?"'],
    ['name BEGINSWITH[c] "ab"', 'name BEGINSWITH[c] "ab"'],
    ['name ENDSWITH[c] "ab"', 'name ENDSWITH[c] "ab"'],
    ['name CONTAINS[c] "ab"', 'name CONTAINS[c] "ab"'],
    ['name LIKE[c] "a*"', 'name LIKE[c] "a*"'],
    ['name ==[c] "ab"', 'name ==[c] "ab"'],
    ['name !=[C] "ab"', 'name !=[c] "ab"'],
    ['name beginsWith "x"', 'name BEGINSWITH "x"'],
    ['name like "x"', 'name LIKE "x"'],
    // IN and BETWEEN
    ['a IN {1, "x", null, true}', 'a IN {1, "x", null, true}'],
    ['a IN {}', 'a IN {}'],
    ['a in {1}', 'a IN {1}'],
    ['a IN $0', 'a IN $0'],
    ['a IN %user.teams', 'a IN %user.teams'],
    ['"x" IN tags', 'tags == "x"'],
    ['%user.id IN editors', 'editors == %user.id'],
    ['a BETWEEN {1, 5}', 'a BETWEEN {1, 5}'],
    ['a between {$0, $1}', 'a BETWEEN {$0, $1}'],
    // value on the left is normalised
    ['5 < age', 'age > 5'],
    ['5 <= age', 'age >= 5'],
    ['5 > age', 'age < 5'],
    ['5 >= age', 'age <= 5'],
    ['5 == age', 'age == 5'],
    ['$0 != age', 'age != $0'],
    ['%user.id == owner', 'owner == %user.id'],
    // constants on both sides stay (folded when bound)
    ['1 == 1', '1 == 1'],
    ['%user.role == "admin"', '%user.role == "admin"'],
    // logic, precedence NOT > AND > OR, parentheses
    ['a == 1 AND b == 2', 'a == 1 AND b == 2'],
    ['a == 1 && b == 2', 'a == 1 AND b == 2'],
    ['a == 1 OR b == 2', 'a == 1 OR b == 2'],
    ['a == 1 || b == 2', 'a == 1 OR b == 2'],
    ['a == 1 OR b == 2 AND c == 3', 'a == 1 OR b == 2 AND c == 3'],
    ['(a == 1 OR b == 2) AND c == 3', '(a == 1 OR b == 2) AND c == 3'],
    ['a == 1 AND b == 2 OR c == 3', 'a == 1 AND b == 2 OR c == 3'],
    ['a == 1 AND (b == 2 OR c == 3)', 'a == 1 AND (b == 2 OR c == 3)'],
    ['NOT a == 1 AND b == 2', 'NOT a == 1 AND b == 2'],
    ['NOT (a == 1 AND b == 2)', 'NOT (a == 1 AND b == 2)'],
    ['!a == 1', 'NOT a == 1'],
    ['!(a == 1)', 'NOT a == 1'],
    ['not not a == 1', 'NOT NOT a == 1'],
    ['((((a == 1))))', 'a == 1'],
    ['a == 1 and b == 2 or c == 3 and not d == 4', 'a == 1 AND b == 2 OR c == 3 AND NOT d == 4'],
    // literals
    ['a == -5', 'a == -5'],
    ['a == 2.5', 'a == 2.5'],
    ['a == -0.25', 'a == -0.25'],
    ['a == .5', 'a == 0.5'],
    ['a == 1e3', 'a == 1000'],
    ['a == 1.5E-3', 'a == 0.0015'],
    ['a == -2e+2', 'a == -200'],
    ['a == 007', 'a == 7'],
    ['a == -0', 'a == 0'],
    ['a == true', 'a == true'],
    ['a == FALSE', 'a == false'],
    ['a == Null', 'a == null'],
    ["a == 'single'", 'a == "single"'],
    ['a == "double"', 'a == "double"'],
    ['a == ""', 'a == ""'],
    ['a == $12', 'a == $12'],
    ['TRUEPREDICATE', 'TRUEPREDICATE'],
    ['falsepredicate', 'FALSEPREDICATE'],
    ['TRUEPREDICATE AND a == 1', 'TRUEPREDICATE AND a == 1'],
    // key paths
    ['a.b.c == 1', 'a.b.c == 1'],
    ['_id == "x"', '_id == "x"'],
    ['A_b9.c_ == 1', 'A_b9.c_ == 1'],
    ['in.x == 1', 'in.x == 1'],
    ['x.and == 1', 'x.and == 1'],
    ['%user.claims.org.id == orgId', 'orgId == %user.claims.org.id'],
  ])('%j parses as %j', (text, expected) => {
    expect(canon(text)).toBe(expected);
  });

  it.each([
    [String.raw`"a\"b"`, 'a"b'],
    [String.raw`'a\'b'`, "a'b"],
    [`'a"b'`, 'a"b'],
    [`"a'b"`, "a'b"],
    [String.raw`"a\\b"`, 'a\\b'],
    [String.raw`"a\nb"`, 'a\nb'],
    [String.raw`"a\tb"`, 'a\tb'],
    [String.raw`"a\rb"`, 'a\rb'],
    [String.raw`"a\/b"`, 'a/b'],
    [String.raw`"\u00e9\u00C9"`, 'éÉ'],
    [String.raw`"\ud83d\ude00"`, '😀'],
    ['"😀 raw é"', '😀 raw é'],
    ['"line\nbreak"', 'line\nbreak'],
    [String.raw`"\u0000"`, '\u0000'],
    ['"a*b?c.d"', 'a*b?c.d'],
  ])('string literal %s is %j', (literal, value) => {
    const node = parseQuery(`a == ${literal}`);
    expect(node).toMatchObject({ kind: 'compare', right: { kind: 'literal', value } });
  });

  it('builds the documented tree', () => {
    expect(parseQuery('5 < a.b AND NOT (c IN {1, $0} OR d BETWEEN {%user.x, 2})')).toEqual({
      kind: 'and',
      pos: 0,
      children: [
        {
          kind: 'compare',
          op: '>',
          caseInsensitive: false,
          left: { kind: 'path', path: 'a.b', segments: ['a', 'b'], pos: 4 },
          right: { kind: 'literal', value: 5, pos: 0 },
          pos: 0,
        },
        {
          kind: 'not',
          pos: 12,
          child: {
            kind: 'or',
            pos: 17,
            children: [
              {
                kind: 'in',
                pos: 17,
                left: { kind: 'path', path: 'c', segments: ['c'], pos: 17 },
                right: {
                  kind: 'list',
                  pos: 22,
                  items: [
                    { kind: 'literal', value: 1, pos: 23 },
                    { kind: 'arg', index: 0, pos: 26 },
                  ],
                },
              },
              {
                kind: 'between',
                pos: 33,
                left: { kind: 'path', path: 'd', segments: ['d'], pos: 33 },
                low: { kind: 'var', claim: ['x'], pos: 44 },
                high: { kind: 'literal', value: 2, pos: 53 },
              },
            ],
          },
        },
      ],
    });
  });

  it.each(['', '   ', '\n\t '])('empty text %j is TRUEPREDICATE', (text) => {
    expect(parseQuery(text)).toEqual({ kind: 'const', value: true, pos: 0 });
  });

  it('tells whether a tree uses %user variables', () => {
    expect(usesUserVars(parseQuery('a == 1 AND b IN {1, 2}'))).toBe(false);
    expect(usesUserVars(parseQuery('a == 1 AND NOT (b == 2 OR c == %user.id)'))).toBe(true);
    expect(usesUserVars(parseQuery('a IN {1, %user.org}'))).toBe(true);
    expect(usesUserVars(parseQuery('a IN %user.teams'))).toBe(true);
    expect(usesUserVars(parseQuery('a BETWEEN {1, %user.max}'))).toBe(true);
    expect(usesUserVars(parseQuery('%user.role == "admin"'))).toBe(true);
  });

  it('accepts the maximum length and nesting depth', () => {
    const chain = Array.from({ length: 370 }, (_, i) => `f${i % 10} == ${i % 10}`).join(' OR ');
    expect(chain.length).toBeLessThanOrEqual(LIMITS.filterMaxLength);
    expect(parseQuery(chain)).toMatchObject({ kind: 'or', children: expect.any(Array) });
    expect((parseQuery(chain) as { children: readonly unknown[] }).children).toHaveLength(370);
    const deep = '('.repeat(MAX_QUERY_DEPTH) + 'a == 1' + ')'.repeat(MAX_QUERY_DEPTH);
    expect(canon(deep)).toBe('a == 1');
    expect(canon('NOT '.repeat(MAX_QUERY_DEPTH) + 'a == 1')).toBe('NOT '.repeat(MAX_QUERY_DEPTH) + 'a == 1');
  });
});

describe('parseQuery: errors with positions', () => {
  it.each<[string, number, RegExp]>([
    // unterminated strings, bad escapes
    ['a == "abc', 5, /unterminated string starting at position 5/],
    ["a == 'abc\\'", 5, /unterminated string/],
    ['a == "abc\\', 5, /unterminated string/],
    ['a == "a\\qb"', 7, /unknown escape '\\q'/],
    ['a == "\\u12"', 6, /invalid escape '\\u12"'/],
    ['a == "\\ud800"', 5, /unpaired surrogate/],
    // missing operands
    ['a ==', 4, /expected a value after '==', found the end of the query at position 4/],
    ['a == AND b == 1', 5, /expected a value after '==', found 'AND'/],
    ['a ==[c]', 7, /expected a value after '=='\[c\]/],
    ['a', 1, /expected an operator .* after 'a', found the end of the query/],
    ['== 1', 0, /expected a comparison .*found '=='/],
    ['a == 1 AND', 10, /expected a comparison .*found the end of the query/],
    ['a == 1 OR OR b == 1', 10, /expected a comparison .*found 'OR'/],
    ['NOT', 3, /expected a comparison/],
    ['()', 1, /expected a comparison .*found '\)'/],
    ['a IN', 4, /expected '\{ \.\.\. \}', an argument .* after 'IN'/],
    ['a IN {1,}', 8, /expected a value in the IN list, found '}'/],
    ['a IN {1 2}', 8, /expected ',' or '}' in the IN list opened at position 5/],
    ['a IN {b}', 6, /key paths are not allowed in a list/],
    ['a IN {1', 7, /expected ',' or '}'/],
    ['a BETWEEN 1', 10, /expected '\{ low, high \}' after 'BETWEEN'/],
    ['a BETWEEN {1}', 10, /exactly two values/],
    ['a BETWEEN {1, 2, 3}', 10, /exactly two values/],
    // unknown operators and characters
    ['a ~ 1', 2, /unexpected character '~' at position 2/],
    ['a === 1', 4, /expected a value after '==', found '='/],
    ['a => 1', 3, /expected a value after '=', found '>'/],
    ['a & b', 2, /unexpected '&' \(did you mean '&&'\?\)/],
    ['a == 1 | b == 2', 7, /did you mean '\|\|'/],
    ['a MATCHES "x"', 2, /expected an operator .* found 'MATCHES'/],
    ['a == [d] "x"', 5, /unknown modifier '\[d\]'/],
    ['a ==[d] "x"', 4, /unknown modifier/],
    ['a >[c] "x"', 3, /'\[c\]' only applies to ==, !=, BEGINSWITH/],
    ['a IN[c] {"x"}', 4, /'\[c\]' only applies/],
    ['a == @', 5, /unexpected character '@'/],
    // trailing garbage, parentheses
    ['a == 1 b', 7, /unexpected 'b', expected AND, OR or the end of the query at position 7/],
    ['a == 1)', 6, /unexpected '\)' \(no '\(' to close\)/],
    ['(a == 1', 7, /expected '\)' to close the '\(' at position 0, found the end of the query/],
    ['(a == 1 b', 8, /expected '\)' to close/],
    ['TRUEPREDICATE == 1', 14, /unexpected '=='/],
    // literals
    ['a == 1e999', 5, /the number 1e999 is out of range/],
    ['a == 1.', 7, /expected a digit after the decimal point/],
    ['a == 1e', 7, /expected the exponent's digits/],
    ['a == 12abc', 7, /unexpected 'a' after the number/],
    ['a == - 5', 5, /unexpected '-'/],
    ['a == 1.2.3', 8, /unexpected '\.' after the number/],
    // key paths, $ and %
    ['$where == 1', 0, /key paths cannot start with '\$'/],
    ['a.$gt == 1', 2, /segments cannot start with '\$'/],
    ['a. b == 1', 2, /expected a field name after '\.'/],
    ['a..b == 1', 2, /expected a field name after '\.'/],
    ['a.1 == 1', 2, /expected a field name after '\.'/],
    ['.a == 1', 0, /unexpected '\.'/],
    ['a.b == c.d', 7, /comparing two key paths \('a\.b' and 'c\.d'\) is not supported/],
    ['a IN b', 5, /comparing two key paths/],
    ['"x" BEGINSWITH name', 0, /the left side of BEGINSWITH must be the key path/],
    ['a == $', 5, /expected an argument index after '\$'/],
    ['a == $1x', 7, /unexpected 'x' after the argument/],
    [`a == $${LIMITS.maxArgs}`, 5, /argument \$64 is out of range/],
    ['a == %env.x', 5, /only %user\.id and %user\.<claim>/],
    ['a == %users.x', 5, /only %user\.id/],
    ['a == %user', 10, /expected '\.id' or '\.<claim>' after %user/],
    ['a == %user.', 11, /expected a field name after '\.' in %user claim/],
    // types known at parse time
    ['a BEGINSWITH 5', 13, /BEGINSWITH compares strings, found 5/],
    ['a LIKE null', 7, /LIKE compares strings/],
    ['a ==[c] true', 8, /==\[c\] compares strings/],
  ])('%j fails at %i', (text, position, message) => {
    const e = parseError(text);
    expect(e.position).toBe(position);
    expect(e.message).toMatch(message);
    expect(e.code).toBe('INVALID_QUERY');
    expect(e.toAck()).toMatchObject({ success: false, code: 'INVALID_QUERY', position });
  });

  it('limits the length', () => {
    const text = 'a == 1 OR '.repeat(500) + 'a == 1';
    const e = parseError(text);
    expect(e.position).toBe(LIMITS.filterMaxLength);
    expect(e.message).toMatch(/longer than 4096 characters/);
  });

  it.each([
    ['parentheses', '('.repeat(MAX_QUERY_DEPTH + 1) + 'a == 1' + ')'.repeat(MAX_QUERY_DEPTH + 1), MAX_QUERY_DEPTH],
    ['NOT', 'NOT '.repeat(MAX_QUERY_DEPTH + 1) + 'a == 1', MAX_QUERY_DEPTH * 4],
    ['!', '!'.repeat(MAX_QUERY_DEPTH + 1) + 'a == 1', MAX_QUERY_DEPTH],
    ['mixed', '(!'.repeat(20) + 'a == 1' + ')'.repeat(20), 32],
  ])('limits the nesting depth (%s)', (_what, text, position) => {
    const e = parseError(text);
    expect(e.message).toMatch(/nests deeper than 32 levels/);
    expect(e.position).toBe(position);
  });

  it('rejects hostile nesting of any size without blowing the stack', () => {
    for (const text of ['('.repeat(4000), '!'.repeat(4000), 'NOT '.repeat(1000), '{'.repeat(4000)]) {
      expect(() => parseQuery(text)).toThrow(InvalidQueryError);
    }
  });

  it('rejects a non-string', () => {
    expect(() => parseQuery(42 as unknown as string)).toThrow(InvalidQueryError);
  });

  it('throws nothing but InvalidQueryError on arbitrary input', () => {
    const alphabet = fc.constantFrom(
      ...'abAB_.$%0123456789-+eE "\'\\{}()[],=!<>&|*?\n'.split(''),
      ' AND ',
      ' OR ',
      'NOT ',
      ' IN ',
      '%user.',
      '[c]',
      ' LIKE ',
      ' BETWEEN ',
    );
    fc.assert(
      fc.property(
        fc.oneof(
          fc.string({ maxLength: 60 }),
          fc.array(alphabet, { maxLength: 30 }).map((a) => a.join('')),
        ),
        (text) => {
          try {
            const node = parseQuery(text);
            // whatever parses prints back to text that parses to the same tree
            expect(stripPos(parseQuery(formatQuery(node)))).toEqual(stripPos(node));
          } catch (e) {
            if (!(e instanceof InvalidQueryError)) throw e;
            expect(e.position).toBeGreaterThanOrEqual(0);
            expect(e.position).toBeLessThanOrEqual(text.length);
          }
        },
      ),
      { numRuns: 3000 },
    );
  });
});

function stripPos(node: unknown): unknown {
  if (Array.isArray(node)) return node.map(stripPos);
  if (node && typeof node === 'object') {
    return Object.fromEntries(
      Object.entries(node)
        .filter(([k]) => k !== 'pos')
        .map(([k, v]) => [k, stripPos(v)]),
    );
  }
  return node;
}
