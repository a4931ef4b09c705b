/**
 * Recursive-descent parser of the query language (grammar in README.md):
 *
 *   query      := orExpr EOF | <empty>
 *   orExpr     := andExpr (('OR' | '||') andExpr)*
 *   andExpr    := notExpr (('AND' | '&&') notExpr)*
 *   notExpr    := ('NOT' | '!') notExpr | primary
 *   primary    := '(' orExpr ')' | TRUEPREDICATE | FALSEPREDICATE | comparison
 *   comparison := operand compareOp ['[c]'] operand
 *               | operand 'IN' ( '{' [value (',' value)*] '}' | arg | userVar | keyPath )
 *               | operand 'BETWEEN' '{' value ',' value '}'
 *   operand    := keyPath | value
 *   value      := string | number | TRUE | FALSE | NULL | arg | userVar
 */
import { InvalidQueryError } from '../errors';
import { LIMITS } from '../types';
import {
  MAX_QUERY_DEPTH,
  type CompareOp,
  type CompareNode,
  type KeyPathNode,
  type ListNode,
  type OperandNode,
  type OrderOp,
  type QueryNode,
  type ValueNode,
} from './query.ast';
import { Lexer, type Token } from './query.lexer';

/** Source text of parsed trees, so that a compiled query can report the text it came from. */
const sourceOf = new WeakMap<QueryNode, string>();

export function sourceText(node: QueryNode): string | undefined {
  return sourceOf.get(node);
}

function fail(message: string, pos: number): never {
  throw new InvalidQueryError(`${message} at position ${pos}`, pos);
}

const FLIPPED: Record<OrderOp, OrderOp> = { '>': '<', '>=': '<=', '<': '>', '<=': '>=' };
const CASE_OPS: ReadonlySet<CompareOp> = new Set<CompareOp>(['==', '!=', 'BEGINSWITH', 'ENDSWITH', 'CONTAINS', 'LIKE']);
const STRING_OPS: ReadonlySet<CompareOp> = new Set<CompareOp>(['BEGINSWITH', 'ENDSWITH', 'CONTAINS', 'LIKE']);

/**
 * Parses a filter or rule. Empty (or blank) text is TRUEPREDICATE: a caller that must not accept an
 * empty filter checks the text itself. Throws InvalidQueryError with the 0-based position.
 */
export function parseQuery(text: string): QueryNode {
  if (typeof text !== 'string') throw new InvalidQueryError('the query must be a string', 0);
  if (text.length > LIMITS.filterMaxLength) {
    throw new InvalidQueryError(`the query is longer than ${LIMITS.filterMaxLength} characters (${text.length})`, LIMITS.filterMaxLength);
  }
  const parser = new Parser(text);
  const node = parser.parse();
  sourceOf.set(node, text);
  return node;
}

class Parser {
  private readonly lexer: Lexer;

  constructor(text: string) {
    this.lexer = new Lexer(text);
  }

  parse(): QueryNode {
    const first = this.lexer.peek();
    if (first.type === 'eof') return { kind: 'const', value: true, pos: 0 };
    const node = this.orExpr(0);
    const rest = this.lexer.peek();
    if (rest.type !== 'eof') {
      const hint = rest.type === 'punct' && rest.char === ')' ? ` (no '(' to close)` : ', expected AND, OR or the end of the query';
      fail(`unexpected ${this.lexer.describe(rest)}${hint}`, rest.pos);
    }
    return node;
  }

  private isKeyword(t: Token, k: string): boolean {
    return t.type === 'keyword' && t.keyword === k;
  }

  private orExpr(depth: number): QueryNode {
    const first = this.andExpr(depth);
    if (!this.isKeyword(this.lexer.peek(), 'OR')) return first;
    const children = [first];
    while (this.isKeyword(this.lexer.peek(), 'OR')) {
      this.lexer.next();
      children.push(this.andExpr(depth));
    }
    return { kind: 'or', children, pos: first.pos };
  }

  private andExpr(depth: number): QueryNode {
    const first = this.notExpr(depth);
    if (!this.isKeyword(this.lexer.peek(), 'AND')) return first;
    const children = [first];
    while (this.isKeyword(this.lexer.peek(), 'AND')) {
      this.lexer.next();
      children.push(this.notExpr(depth));
    }
    return { kind: 'and', children, pos: first.pos };
  }

  private notExpr(depth: number): QueryNode {
    const t = this.lexer.peek();
    if (this.isKeyword(t, 'NOT')) {
      if (depth >= MAX_QUERY_DEPTH) fail(`the query nests deeper than ${MAX_QUERY_DEPTH} levels`, t.pos);
      this.lexer.next();
      return { kind: 'not', child: this.notExpr(depth + 1), pos: t.pos };
    }
    return this.primary(depth);
  }

  private primary(depth: number): QueryNode {
    const t = this.lexer.peek();
    if (t.type === 'punct' && t.char === '(') {
      if (depth >= MAX_QUERY_DEPTH) fail(`the query nests deeper than ${MAX_QUERY_DEPTH} levels`, t.pos);
      this.lexer.next();
      const inner = this.orExpr(depth + 1);
      const close = this.lexer.next();
      if (!(close.type === 'punct' && close.char === ')')) {
        fail(`expected ')' to close the '(' at position ${t.pos}, found ${this.lexer.describe(close)}`, close.pos);
      }
      return inner;
    }
    if (this.isKeyword(t, 'TRUEPREDICATE') || this.isKeyword(t, 'FALSEPREDICATE')) {
      this.lexer.next();
      return { kind: 'const', value: this.isKeyword(t, 'TRUEPREDICATE'), pos: t.pos };
    }
    return this.comparison();
  }

  private comparison(): QueryNode {
    const leftTok = this.lexer.next();
    const left = this.operand(leftTok);
    if (!left) {
      fail(`expected a comparison (such as 'field == value'), found ${this.lexer.describe(leftTok)}`, leftTok.pos);
    }
    const opTok = this.lexer.next();
    const leftText = this.lexer.describe(leftTok);
    if (opTok.type === 'keyword' && opTok.keyword === 'IN') {
      this.rejectModifier('IN');
      return this.inRest(left, opTok);
    }
    if (opTok.type === 'keyword' && opTok.keyword === 'BETWEEN') {
      this.rejectModifier('BETWEEN');
      return this.betweenRest(left, opTok);
    }
    let op: CompareOp;
    if (opTok.type === 'op') op = opTok.op;
    else if (opTok.type === 'keyword' && STRING_OPS.has(opTok.keyword as CompareOp)) op = opTok.keyword as CompareOp;
    else {
      fail(
        `expected an operator (==, !=, <, <=, >, >=, BEGINSWITH, ENDSWITH, CONTAINS, LIKE, IN, BETWEEN) after ${leftText}, found ${this.lexer.describe(opTok)}`,
        opTok.pos,
      );
    }
    const opText = this.lexer.describe(opTok);
    let caseInsensitive = false;
    const mod = this.lexer.peek();
    if (mod.type === 'modifier') {
      if (!CASE_OPS.has(op)) fail(`'[c]' only applies to ==, !=, BEGINSWITH, ENDSWITH, CONTAINS and LIKE, not ${opText}`, mod.pos);
      this.lexer.next();
      caseInsensitive = true;
    }
    const rightTok = this.lexer.next();
    const right = this.operand(rightTok);
    if (!right) fail(`expected a value after ${opText}${caseInsensitive ? '[c]' : ''}, found ${this.lexer.describe(rightTok)}`, rightTok.pos);

    let node: CompareNode;
    if (right.kind === 'path') {
      if (left.kind === 'path') {
        fail(`comparing two key paths ('${left.path}' and '${right.path}') is not supported: one side must be a value`, right.pos);
      }
      if (STRING_OPS.has(op)) {
        fail(`the left side of ${op} must be the key path ('${right.path}' ${op} ...)`, left.pos);
      }
      const flipped = op === '==' || op === '!=' ? op : FLIPPED[op as OrderOp];
      node = { kind: 'compare', op: flipped, caseInsensitive, left: right, right: left, pos: left.pos };
    } else {
      node = { kind: 'compare', op, caseInsensitive, left, right, pos: left.pos };
    }
    // Literal values are checked here so that the error points at them; arguments and variables
    // are checked when bound.
    const needsString = STRING_OPS.has(op) || caseInsensitive;
    if (needsString) {
      for (const side of [node.left, node.right]) {
        if (side.kind === 'literal' && typeof side.value !== 'string') {
          fail(`${op}${caseInsensitive ? '[c]' : ''} compares strings, found ${String(side.value)}`, side.pos);
        }
      }
    }
    return node;
  }

  private rejectModifier(op: string): void {
    const mod = this.lexer.peek();
    if (mod.type === 'modifier') fail(`'[c]' only applies to ==, !=, BEGINSWITH, ENDSWITH, CONTAINS and LIKE, not ${op}`, mod.pos);
  }

  private inRest(left: OperandNode, opTok: Token): QueryNode {
    const t = this.lexer.next();
    if (t.type === 'punct' && t.char === '{') {
      const list: ListNode = { kind: 'list', items: this.valueList(t, 'IN'), pos: t.pos };
      return { kind: 'in', left, right: list, pos: left.pos };
    }
    if (t.type === 'arg' || t.type === 'var') {
      const right = this.operand(t) as ValueNode & { kind: 'arg' | 'var' };
      return { kind: 'in', left, right, pos: left.pos };
    }
    if (t.type === 'path') {
      // `value IN listField` (Realm's list membership): with MongoDB's array semantics this is
      // `listField == value`.
      const path = this.operand(t) as KeyPathNode;
      if (left.kind === 'path') {
        fail(`comparing two key paths ('${left.path}' IN '${path.path}') is not supported: one side must be a value`, path.pos);
      }
      return { kind: 'compare', op: '==', caseInsensitive: false, left: path, right: left, pos: left.pos };
    }
    return fail(`expected '{ ... }', an argument ($0) or %user.<claim> after ${this.lexer.describe(opTok)}, found ${this.lexer.describe(t)}`, t.pos);
  }

  private betweenRest(left: OperandNode, opTok: Token): QueryNode {
    const t = this.lexer.next();
    if (!(t.type === 'punct' && t.char === '{')) {
      fail(`expected '{ low, high }' after ${this.lexer.describe(opTok)}, found ${this.lexer.describe(t)}`, t.pos);
    }
    const items = this.valueList(t, 'BETWEEN');
    if (items.length !== 2) fail(`BETWEEN takes exactly two values '{ low, high }', found ${items.length}`, t.pos);
    return { kind: 'between', left, low: items[0], high: items[1], pos: left.pos };
  }

  /** After '{': values separated by commas, then '}'. */
  private valueList(open: Token, op: string): ValueNode[] {
    const items: ValueNode[] = [];
    let t = this.lexer.next();
    if (t.type === 'punct' && t.char === '}') return items;
    for (;;) {
      const v = this.operand(t);
      if (!v || v.kind === 'path') {
        const why = v?.kind === 'path' ? ' (key paths are not allowed in a list)' : '';
        fail(`expected a value in the ${op} list${why}, found ${this.lexer.describe(t)}`, t.pos);
      }
      items.push(v);
      t = this.lexer.next();
      if (t.type === 'punct' && t.char === '}') return items;
      if (!(t.type === 'punct' && t.char === ',')) {
        fail(`expected ',' or '}' in the ${op} list opened at position ${open.pos}, found ${this.lexer.describe(t)}`, t.pos);
      }
      t = this.lexer.next();
    }
  }

  /** A token as an operand, or null when it cannot be one. */
  private operand(t: Token): OperandNode | null {
    switch (t.type) {
      case 'path':
        return { kind: 'path', path: t.text, segments: t.segments, pos: t.pos };
      case 'string':
      case 'number':
        return { kind: 'literal', value: t.value, pos: t.pos };
      case 'arg':
        return { kind: 'arg', index: t.index, pos: t.pos };
      case 'var':
        return { kind: 'var', claim: t.claim, pos: t.pos };
      case 'keyword':
        if (t.keyword === 'TRUE') return { kind: 'literal', value: true, pos: t.pos };
        if (t.keyword === 'FALSE') return { kind: 'literal', value: false, pos: t.pos };
        if (t.keyword === 'NULL') return { kind: 'literal', value: null, pos: t.pos };
        return null;
      default:
        return null;
    }
  }
}
