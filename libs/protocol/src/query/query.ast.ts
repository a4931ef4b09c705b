/**
 * The one syntax tree of the query language (README.md in this folder). Plain, JSON-serialisable,
 * immutable objects; every node carries `pos`, the 0-based character offset where it starts in the
 * source text, so that errors found when binding arguments can point at the source.
 *
 * The parser normalises comparisons: when one side is a key path, it is always `left` (so
 * `5 < age` becomes `age > 5`), and `value IN path` becomes `path == value`. When neither side is a
 * key path, both are values and the comparison folds to a constant when bound.
 */

/** A JSON-like primitive: the only kind of value the language compares with. */
export type QueryPrimitive = string | number | boolean | null;

export type EqualityOp = '==' | '!=';
export type OrderOp = '>' | '>=' | '<' | '<=';
export type StringOp = 'BEGINSWITH' | 'ENDSWITH' | 'CONTAINS' | 'LIKE';
export type CompareOp = EqualityOp | OrderOp | StringOp;

export interface KeyPathNode {
  readonly kind: 'path';
  /** The dotted path as written (`a.b.c`). */
  readonly path: string;
  readonly segments: readonly string[];
  readonly pos: number;
}

export interface LiteralNode {
  readonly kind: 'literal';
  readonly value: QueryPrimitive;
  readonly pos: number;
}

/** `$n`: the n-th element of the arguments array given when binding. */
export interface ArgNode {
  readonly kind: 'arg';
  readonly index: number;
  readonly pos: number;
}

/** `%user.id`, `%user.<claim>[.<sub>...]`: `claim` is the path below `user` (`['id']`). */
export interface UserVarNode {
  readonly kind: 'var';
  readonly claim: readonly string[];
  readonly pos: number;
}

export type ValueNode = LiteralNode | ArgNode | UserVarNode;
export type OperandNode = KeyPathNode | ValueNode;

export interface ConstNode {
  readonly kind: 'const';
  /** TRUEPREDICATE / FALSEPREDICATE (and the empty query, which is TRUEPREDICATE). */
  readonly value: boolean;
  readonly pos: number;
}

export interface AndNode {
  readonly kind: 'and';
  readonly children: readonly QueryNode[];
  readonly pos: number;
}

export interface OrNode {
  readonly kind: 'or';
  readonly children: readonly QueryNode[];
  readonly pos: number;
}

export interface NotNode {
  readonly kind: 'not';
  readonly child: QueryNode;
  readonly pos: number;
}

export interface CompareNode {
  readonly kind: 'compare';
  readonly op: CompareOp;
  /** `[c]`: only with ==, != and the string operators. */
  readonly caseInsensitive: boolean;
  /** The key path when the comparison has one; otherwise a value (the comparison is constant). */
  readonly left: OperandNode;
  readonly right: ValueNode;
  readonly pos: number;
}

/** `{ a, b, ... }` after IN. */
export interface ListNode {
  readonly kind: 'list';
  readonly items: readonly ValueNode[];
  readonly pos: number;
}

export interface InNode {
  readonly kind: 'in';
  readonly left: OperandNode;
  /** A literal list, or an argument / user variable that must be bound to an array. */
  readonly right: ListNode | ArgNode | UserVarNode;
  readonly pos: number;
}

export interface BetweenNode {
  readonly kind: 'between';
  readonly left: OperandNode;
  readonly low: ValueNode;
  readonly high: ValueNode;
  readonly pos: number;
}

export type QueryNode = ConstNode | AndNode | OrNode | NotNode | CompareNode | InNode | BetweenNode;

/**
 * Nesting limit of parentheses and NOT, so that hostile input cannot exhaust the stack. 32 also
 * keeps the compiled filter (two BSON levels per alternation of AND and OR) within MongoDB's limit
 * of 100 nested levels.
 */
export const MAX_QUERY_DEPTH = 32;

/** Visits every node of the tree (depth-first, parents first). */
export function walkQuery(node: QueryNode, visit: (n: QueryNode | OperandNode | ListNode) => void): void {
  visit(node);
  switch (node.kind) {
    case 'and':
    case 'or':
      for (const c of node.children) walkQuery(c, visit);
      return;
    case 'not':
      walkQuery(node.child, visit);
      return;
    case 'compare':
      visit(node.left);
      visit(node.right);
      return;
    case 'in':
      visit(node.left);
      visit(node.right);
      if (node.right.kind === 'list') for (const item of node.right.items) visit(item);
      return;
    case 'between':
      visit(node.left);
      visit(node.low);
      visit(node.high);
      return;
    case 'const':
      return;
  }
}

/** True when the tree references `%user.*` (such a query must be bound per user). */
export function usesUserVars(node: QueryNode): boolean {
  let found = false;
  walkQuery(node, (n) => {
    if (n.kind === 'var') found = true;
  });
  return found;
}
