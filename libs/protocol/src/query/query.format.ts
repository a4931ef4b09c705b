/** Prints a syntax tree back as query text that parses to the same tree (up to positions). */
import type { OperandNode, QueryNode, QueryPrimitive } from './query.ast';

export function formatQuery(node: QueryNode): string {
  switch (node.kind) {
    case 'const':
      return node.value ? 'TRUEPREDICATE' : 'FALSEPREDICATE';
    case 'and':
      return node.children.map((c) => (c.kind === 'or' || c.kind === 'and' ? `(${formatQuery(c)})` : formatQuery(c))).join(' AND ');
    case 'or':
      return node.children.map((c) => (c.kind === 'or' ? `(${formatQuery(c)})` : formatQuery(c))).join(' OR ');
    case 'not': {
      const c = node.child;
      return c.kind === 'and' || c.kind === 'or' ? `NOT (${formatQuery(c)})` : `NOT ${formatQuery(c)}`;
    }
    case 'compare':
      return `${formatOperand(node.left)} ${node.op}${node.caseInsensitive ? '[c]' : ''} ${formatOperand(node.right)}`;
    case 'in': {
      const r = node.right;
      const right = r.kind === 'list' ? `{${r.items.map(formatOperand).join(', ')}}` : formatOperand(r);
      return `${formatOperand(node.left)} IN ${right}`;
    }
    case 'between':
      return `${formatOperand(node.left)} BETWEEN {${formatOperand(node.low)}, ${formatOperand(node.high)}}`;
  }
}

export function formatOperand(o: OperandNode): string {
  switch (o.kind) {
    case 'path':
      return o.path;
    case 'arg':
      return `$${o.index}`;
    case 'var':
      return `%user.${o.claim.join('.')}`;
    case 'literal':
      return formatLiteral(o.value);
  }
}

export function formatLiteral(v: QueryPrimitive): string {
  if (typeof v === 'string') return quoteString(v);
  return String(v);
}

/** A double-quoted string literal with escapes for quotes, backslashes and control characters. */
export function quoteString(s: string): string {
  let out = '"';
  for (let i = 0; i < s.length; i++) {
    const ch = s[i];
    const c = s.charCodeAt(i);
    if (ch === '"' || ch === '\\') out += '\\' + ch;
    else if (ch === '\n') out += '\\n';
    else if (ch === '\t') out += '\\t';
    else if (ch === '\r') out += '\\r';
    else if (c < 0x20 || c === 0x7f) out += '\\u' + c.toString(16).padStart(4, '0');
    else out += ch;
  }
  return out + '"';
}
