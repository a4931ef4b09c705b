/**
 * Binding: substitutes `$n` arguments and `%user.*` variables into the tree as values (never as
 * text), checks their types, folds constants and pushes NOT down to the comparisons, producing the
 * IR both compilers work from.
 *
 * A `%user` claim that is missing (or null) is *unknown*, as NULL is in SQL: a comparison with it
 * is false, and so is its negation (`NOT (orgId == %user.orgId)` does not match either). Nothing
 * can match through a claim the user does not have.
 */
import { InvalidQueryError, PayloadTooLargeError } from '../errors';
import { LIMITS } from '../types';
import type { ArgNode, CompareNode, KeyPathNode, OperandNode, QueryNode, QueryPrimitive, UserVarNode, ValueNode } from './query.ast';
import { hasLoneSurrogate } from './query.lexer';
import { ANY_ONE, andIR, constIR, orIR, type Glob, type GlobPart, type IR, type Matcher, type RangeOp, type Scalar } from './query.ir';
import { compilePredicate } from './query.matcher';

export interface QueryVars {
  user?: { id: string; [claim: string]: unknown };
}

const UNKNOWN = Symbol('unknown');
type Resolved = QueryPrimitive | typeof UNKNOWN;
type ResolvedList = readonly Resolved[] | typeof UNKNOWN;

const RANGE: Record<'>' | '>=' | '<' | '<=', RangeOp> = { '>': '$gt', '>=': '$gte', '<': '$lt', '<=': '$lte' };

function fail(message: string, pos: number): never {
  throw new InvalidQueryError(`${message} at position ${pos}`, pos);
}

/** Name of a value node for messages: `argument $1`, `%user.orgId`. */
function nameOf(v: ArgNode | UserVarNode): string {
  return v.kind === 'arg' ? `argument $${v.index}` : `%user.${v.claim.join('.')}`;
}

function typeName(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  if (v instanceof Date) return 'a Date';
  const t = typeof v;
  if (t === 'number') return String(v);
  return t === 'object' ? 'an object' : `a ${t}`;
}

export function bindToIR(node: QueryNode, args: readonly unknown[] | null | undefined, vars: QueryVars | undefined, textLength = 0): IR {
  if (args != null && !Array.isArray(args)) throw new InvalidQueryError('the query arguments must be an array', 0);
  if (args && args.length > LIMITS.maxArgs) {
    throw new InvalidQueryError(`too many query arguments: ${args.length} (at most ${LIMITS.maxArgs})`, 0);
  }
  checkArgumentSizes(args ?? [], textLength);
  return new Binder(args ?? [], vars).lower(node, false);
}

/**
 * Arguments count in the size limits like the text does (used or not: they are kept with the
 * subscription): each string at most LIMITS.maxQueryValueLength characters, and text plus
 * arguments at most LIMITS.maxBoundQuerySize.
 * Stops walking as soon as the total is over, so a huge argument costs no more than the limit.
 */
function checkArgumentSizes(args: readonly unknown[], textLength: number): void {
  let total = textLength;
  const over = () => total > LIMITS.maxBoundQuerySize;
  const tooBig = () => new PayloadTooLargeError(`the query and its arguments may be at most ${LIMITS.maxBoundQuerySize} characters together`);
  const value = (v: unknown, name: string): void => {
    if (typeof v === 'string') {
      if (v.length > LIMITS.maxQueryValueLength)
        throw new PayloadTooLargeError(`${name} is longer than ${LIMITS.maxQueryValueLength} characters (${v.length})`);
      total += v.length + 2;
    } else total += 4;
  };
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    if (Array.isArray(a)) {
      total += 2; // (the element count is checked where the argument is used, with its position)
      for (let j = 0; j < a.length && !over(); j++) value(a[j], `element ${j} of argument $${i}`);
    } else if (a !== null && typeof a === 'object') {
      total += 4 * Math.min(Object.keys(a).length + 1, LIMITS.maxBoundQuerySize); // refused when used; counted anyway
    } else value(a, `argument $${i}`);
    if (over()) throw tooBig();
  }
}

class Binder {
  constructor(
    private readonly args: readonly unknown[],
    private readonly vars: QueryVars | undefined,
  ) {}

  /** The IR of `node`, or of `NOT node` when `neg`. */
  lower(node: QueryNode, neg: boolean): IR {
    switch (node.kind) {
      case 'const':
        return constIR(node.value !== neg);
      case 'not':
        return this.lower(node.child, !neg);
      case 'and':
      case 'or': {
        const children = node.children.map((c) => this.lower(c, neg));
        return (node.kind === 'and') !== neg ? andIR(children) : orIR(children);
      }
      case 'compare':
        return this.compare(node, neg);
      case 'between':
        return this.lower(
          {
            kind: 'and',
            pos: node.pos,
            children: [
              { kind: 'compare', op: '>=', caseInsensitive: false, left: node.left, right: node.low, pos: node.pos },
              { kind: 'compare', op: '<=', caseInsensitive: false, left: node.left, right: node.high, pos: node.pos },
            ],
          },
          neg,
        );
      case 'in':
        return this.inList(node.left, node.right.kind === 'list' ? node.right.items : node.right, neg);
    }
  }

  private compare(node: CompareNode, neg: boolean): IR {
    const value = this.scalar(node.right);
    if (value === UNKNOWN) return constIR(false);
    const needsString = node.caseInsensitive || !(node.op === '==' || node.op === '!=' || node.op in RANGE);
    if (needsString && typeof value !== 'string') {
      fail(`${node.op}${node.caseInsensitive ? '[c]' : ''} compares strings, but ${this.describe(node.right)} is ${typeName(value)}`, node.right.pos);
    }
    return this.onOperand(node.left, neg, (path, n) => {
      switch (node.op) {
        case '==':
        case '!=': {
          const isNeg = n !== (node.op === '!=');
          if (node.caseInsensitive) return leaf(path, isNeg, globMatcher('==', value as string, true));
          return leaf(path, isNeg, value === null ? { t: 'null' } : { t: 'eq', v: value });
        }
        case '>':
        case '>=':
        case '<':
        case '<=':
          if (value === null) {
            // MongoDB: $gte/$lte null match what == null matches; $gt/$lt null match nothing.
            return node.op === '>=' || node.op === '<=' ? leaf(path, n, { t: 'null' }) : constIR(n);
          }
          return leaf(path, n, { t: 'range', op: RANGE[node.op], v: value });
        default:
          return leaf(path, n, globMatcher(node.op, value as string, node.caseInsensitive));
      }
    });
  }

  private inList(left: OperandNode, right: readonly ValueNode[] | ArgNode | UserVarNode, neg: boolean): IR {
    let items: ResolvedList;
    if (Array.isArray(right)) items = (right as readonly ValueNode[]).map((v) => this.scalar(v));
    else items = this.array(right as ArgNode | UserVarNode);
    if (items === UNKNOWN) return constIR(false);
    const known: QueryPrimitive[] = [];
    for (const v of items) {
      if (v !== UNKNOWN) known.push(v);
      else if (neg) return constIR(false); // NOT (x IN {.., unknown}) is not known to be true
    }
    const nonNull = [...new Set(known.filter((v): v is Scalar => v !== null))];
    const hasNull = known.includes(null);
    return this.onOperand(left, neg, (path, n) => {
      const parts: IR[] = [];
      if (nonNull.length === 1) parts.push(leaf(path, n, { t: 'eq', v: nonNull[0] }));
      else if (nonNull.length > 1) parts.push(leaf(path, n, { t: 'in', vs: nonNull }));
      if (hasNull) parts.push(leaf(path, n, { t: 'null' }));
      return n ? andIR(parts) : orIR(parts);
    });
  }

  /**
   * Builds the comparison for a key path; for a value on the left (`5 > 3`, `%user.role == 'admin'`),
   * evaluates it now as if the value were a document's field.
   */
  private onOperand(left: OperandNode, neg: boolean, build: (path: KeyPathNode, neg: boolean) => IR): IR {
    if (left.kind === 'path') return build(left, neg);
    const subject = this.scalar(left);
    if (subject === UNKNOWN) return constIR(false);
    const ir = build({ kind: 'path', path: 'v', segments: ['v'], pos: left.pos }, neg);
    return constIR(compilePredicate(ir)({ v: subject }));
  }

  private describe(v: ValueNode): string {
    return v.kind === 'literal' ? JSON.stringify(v.value) : nameOf(v);
  }

  private scalar(v: ValueNode): Resolved {
    if (v.kind === 'literal') return v.value;
    const raw = this.raw(v);
    if (raw === UNKNOWN) return UNKNOWN;
    if (Array.isArray(raw)) fail(`${nameOf(v)} is an array: only IN takes an array`, v.pos);
    return checkPrimitive(raw, nameOf(v), v.pos);
  }

  private array(v: ArgNode | UserVarNode): ResolvedList {
    const raw = this.raw(v);
    if (raw === UNKNOWN) return UNKNOWN;
    if (!Array.isArray(raw)) fail(`IN ${nameOf(v)} needs an array, but ${nameOf(v)} is ${typeName(raw)}`, v.pos);
    if (raw.length > LIMITS.maxArrayLength) fail(`${nameOf(v)} has more than ${LIMITS.maxArrayLength} elements`, v.pos);
    return raw.map((item, i) => {
      if (Array.isArray(item)) fail(`element ${i} of ${nameOf(v)} is an array: IN takes an array of strings, numbers, booleans or null`, v.pos);
      return checkPrimitive(item, `element ${i} of ${nameOf(v)}`, v.pos);
    });
  }

  private raw(v: ArgNode | UserVarNode): unknown {
    if (v.kind === 'arg') {
      if (v.index >= this.args.length) {
        fail(`argument $${v.index} is missing (${this.args.length} argument${this.args.length === 1 ? '' : 's'} given)`, v.pos);
      }
      const value = this.args[v.index];
      if (value === undefined) fail(`argument $${v.index} is undefined`, v.pos);
      return value;
    }
    let cur: unknown = this.vars?.user;
    for (const key of v.claim) {
      if (cur === null || typeof cur !== 'object' || Array.isArray(cur) || !Object.hasOwn(cur, key)) return UNKNOWN;
      cur = (cur as Record<string, unknown>)[key];
    }
    return cur == null ? UNKNOWN : cur;
  }
}

/** Arguments and claims must be JSON-like primitives: an object could smuggle in an operator. */
function checkPrimitive(value: unknown, name: string, pos: number): QueryPrimitive {
  switch (typeof value) {
    case 'string':
      if (hasLoneSurrogate(value)) fail(`${name} contains an unpaired surrogate (not valid Unicode)`, pos);
      return value;
    case 'number':
      if (!Number.isFinite(value)) fail(`${name} is ${value}: numbers must be finite`, pos);
      return value === 0 ? 0 : value; // -0 is 0
    case 'boolean':
      return value;
    case 'object':
      if (value === null) return null;
  }
  return fail(`${name} must be a string, number, boolean or null, but is ${typeName(value)}`, pos);
}

function leaf(path: KeyPathNode, neg: boolean, m: Matcher): IR {
  return { k: 'leaf', neg, path: path.path, segments: path.segments, m };
}

/** The pattern of a string operator; only LIKE gives `*` and `?` a meaning. */
function globMatcher(op: '==' | 'BEGINSWITH' | 'ENDSWITH' | 'CONTAINS' | 'LIKE', value: string, ci: boolean): Matcher {
  let glob: Glob;
  switch (op) {
    case '==':
      glob = [[value]];
      break;
    case 'BEGINSWITH':
      glob = [[value], []];
      break;
    case 'ENDSWITH':
      glob = [[], [value]];
      break;
    case 'CONTAINS':
      glob = [[], [value], []];
      break;
    case 'LIKE':
      glob = likeToGlob(value);
      break;
  }
  return { t: 'glob', glob: glob.map((seg) => seg.filter((p) => p !== '')), ci, source: { op, value } };
}

function likeToGlob(pattern: string): Glob {
  const segments: GlobPart[][] = [[]];
  let literal = '';
  const flush = () => {
    if (literal) segments[segments.length - 1].push(literal);
    literal = '';
  };
  for (const ch of pattern) {
    if (ch === '*') {
      flush();
      const current = segments[segments.length - 1];
      // `**` is `*`: an empty segment between two stars adds nothing.
      if (current.length > 0 || segments.length === 1) segments.push([]);
    } else if (ch === '?') {
      flush();
      segments[segments.length - 1].push(ANY_ONE);
    } else literal += ch;
  }
  flush();
  return segments;
}
