/**
 * Hand-written tokenizer of the query language. Tokens are produced on demand (the parser pulls
 * them one at a time), so the first error in the text is the one reported.
 */
import { InvalidQueryError } from '../errors';
import { LIMITS } from '../types';

export type Keyword =
  'AND' | 'OR' | 'NOT' | 'BEGINSWITH' | 'ENDSWITH' | 'CONTAINS' | 'LIKE' | 'IN' | 'BETWEEN' | 'TRUEPREDICATE' | 'FALSEPREDICATE' | 'TRUE' | 'FALSE' | 'NULL';

const KEYWORDS: ReadonlySet<string> = new Set<Keyword>([
  'AND',
  'OR',
  'NOT',
  'BEGINSWITH',
  'ENDSWITH',
  'CONTAINS',
  'LIKE',
  'IN',
  'BETWEEN',
  'TRUEPREDICATE',
  'FALSEPREDICATE',
  'TRUE',
  'FALSE',
  'NULL',
]);

export type OpSymbol = '==' | '!=' | '>' | '>=' | '<' | '<=';

export type Token =
  | { type: 'path'; segments: string[]; text: string; pos: number; end: number }
  | { type: 'keyword'; keyword: Keyword; pos: number; end: number }
  | { type: 'string'; value: string; pos: number; end: number }
  | { type: 'number'; value: number; pos: number; end: number }
  | { type: 'arg'; index: number; pos: number; end: number }
  | { type: 'var'; claim: string[]; pos: number; end: number }
  | { type: 'op'; op: OpSymbol; pos: number; end: number }
  | { type: 'punct'; char: '(' | ')' | '{' | '}' | ','; pos: number; end: number }
  | { type: 'modifier'; pos: number; end: number }
  | { type: 'eof'; pos: number; end: number };

function fail(message: string, pos: number): never {
  throw new InvalidQueryError(`${message} at position ${pos}`, pos);
}

const isDigit = (c: number) => c >= 48 && c <= 57;
const isIdentStart = (c: number) => (c >= 65 && c <= 90) || (c >= 97 && c <= 122) || c === 95;
const isIdentPart = (c: number) => isIdentStart(c) || isDigit(c);
const isSpace = (c: number) => c === 32 || c === 9 || c === 10 || c === 13 || c === 12 || c === 11 || c === 0xa0 || c === 0xfeff;

/** A character for an error message: printable as itself, otherwise as U+XXXX. */
export function describeChar(text: string, pos: number): string {
  const cp = text.codePointAt(pos);
  if (cp === undefined) return 'the end of the query';
  return cp > 32 && cp !== 127 ? `'${String.fromCodePoint(cp)}'` : `U+${cp.toString(16).toUpperCase().padStart(4, '0')}`;
}

export class Lexer {
  private pos = 0;
  private peeked: Token | null = null;

  constructor(readonly text: string) {}

  peek(): Token {
    if (!this.peeked) this.peeked = this.scan();
    return this.peeked;
  }

  next(): Token {
    const t = this.peek();
    this.peeked = null;
    return t;
  }

  /** The source text of a token, for error messages. */
  describe(t: Token): string {
    if (t.type === 'eof') return 'the end of the query';
    const s = this.text.slice(t.pos, t.end);
    return `'${s.length > 40 ? s.slice(0, 37) + '...' : s}'`;
  }

  private scan(): Token {
    const text = this.text;
    let i = this.pos;
    while (i < text.length && isSpace(text.charCodeAt(i))) i++;
    const start = i;
    if (i >= text.length) {
      this.pos = i;
      return { type: 'eof', pos: i, end: i };
    }
    const c = text.charCodeAt(i);
    const c1 = i + 1 < text.length ? text.charCodeAt(i + 1) : -1;
    const tok = (t: Token): Token => {
      this.pos = t.end;
      return t;
    };
    const op = (o: OpSymbol, len: number): Token => tok({ type: 'op', op: o, pos: start, end: start + len });
    const kw = (k: Keyword, len: number): Token => tok({ type: 'keyword', keyword: k, pos: start, end: start + len });

    switch (c) {
      case 0x28 /* ( */:
      case 0x29 /* ) */:
      case 0x7b /* { */:
      case 0x7d /* } */:
      case 0x2c /* , */:
        return tok({ type: 'punct', char: text[i] as '(' | ')' | '{' | '}' | ',', pos: start, end: start + 1 });
      case 0x3d /* = */:
        return c1 === 0x3d ? op('==', 2) : op('==', 1);
      case 0x21 /* ! */:
        return c1 === 0x3d ? op('!=', 2) : kw('NOT', 1);
      case 0x3c /* < */:
        if (c1 === 0x3d) return op('<=', 2);
        if (c1 === 0x3e) return op('!=', 2);
        return op('<', 1);
      case 0x3e /* > */:
        return c1 === 0x3d ? op('>=', 2) : op('>', 1);
      case 0x26 /* & */:
        if (c1 === 0x26) return kw('AND', 2);
        return fail(`unexpected '&' (did you mean '&&'?)`, start);
      case 0x7c /* | */:
        if (c1 === 0x7c) return kw('OR', 2);
        return fail(`unexpected '|' (did you mean '||'?)`, start);
      case 0x22 /* " */:
      case 0x27 /* ' */:
        return tok(this.scanString(start));
      case 0x24 /* $ */:
        return tok(this.scanArg(start));
      case 0x25 /* % */:
        return tok(this.scanVar(start));
      case 0x5b /* [ */:
        return tok(this.scanModifier(start));
    }
    if (isDigit(c) || c === 0x2d /* - */ || (c === 0x2e /* . */ && isDigit(c1))) return tok(this.scanNumber(start));
    if (isIdentStart(c)) {
      const path = this.scanPath(start, 'key path');
      if (path.segments.length === 1) {
        const upper = path.segments[0].toUpperCase();
        if (KEYWORDS.has(upper)) return kw(upper as Keyword, path.end - start);
      }
      return tok({ type: 'path', segments: path.segments, text: text.slice(start, path.end), pos: start, end: path.end });
    }
    if (c === 0x2e) return fail(`unexpected '.' (a key path starts with a letter or '_')`, start);
    return fail(`unexpected character ${describeChar(text, start)}`, start);
  }

  /** identifier ('.' identifier)*, no spaces around the dots. */
  private scanPath(start: number, what: string): { segments: string[]; end: number } {
    const text = this.text;
    const segments: string[] = [];
    let i = start;
    for (;;) {
      const segStart = i;
      const c = text.charCodeAt(i);
      if (!isIdentStart(c)) {
        if (c === 0x24) fail(`${what} segments cannot start with '$'`, i);
        fail(`expected a field name after '.' in ${what}, found ${describeChar(text, i)}`, i);
      }
      i++;
      while (i < text.length && isIdentPart(text.charCodeAt(i))) i++;
      segments.push(text.slice(segStart, i));
      if (text.charCodeAt(i) !== 0x2e) break;
      i++;
    }
    return { segments, end: i };
  }

  private scanNumber(start: number): Token {
    const text = this.text;
    let i = start;
    if (text.charCodeAt(i) === 0x2d) {
      i++;
      const d = text.charCodeAt(i);
      if (!isDigit(d) && !(d === 0x2e && isDigit(text.charCodeAt(i + 1)))) {
        fail(`unexpected '-' (a negative number is written '-5', without a space)`, start);
      }
    }
    while (isDigit(text.charCodeAt(i))) i++;
    if (text.charCodeAt(i) === 0x2e) {
      i++;
      if (!isDigit(text.charCodeAt(i))) fail(`expected a digit after the decimal point`, i);
      while (isDigit(text.charCodeAt(i))) i++;
    }
    const e = text.charCodeAt(i);
    if (e === 0x65 || e === 0x45) {
      i++;
      const s = text.charCodeAt(i);
      if (s === 0x2b || s === 0x2d) i++;
      if (!isDigit(text.charCodeAt(i))) fail(`expected the exponent's digits`, i);
      while (isDigit(text.charCodeAt(i))) i++;
    }
    const after = text.charCodeAt(i);
    if (isIdentPart(after) || after === 0x2e) fail(`unexpected ${describeChar(text, i)} after the number`, i);
    const value = Number(text.slice(start, i));
    if (!Number.isFinite(value)) fail(`the number ${text.slice(start, i)} is out of range`, start);
    return { type: 'number', value: value === 0 ? 0 : value, pos: start, end: i };
  }

  private scanString(start: number): Token {
    const text = this.text;
    const quote = text.charCodeAt(start);
    let i = start + 1;
    let out = '';
    let chunk = i;
    for (;;) {
      if (i >= text.length) fail(`unterminated string starting`, start);
      const c = text.charCodeAt(i);
      if (c === quote) break;
      if (c !== 0x5c /* \ */) {
        i++;
        continue;
      }
      out += text.slice(chunk, i);
      const e = text[i + 1];
      switch (e) {
        case '\\':
        case '"':
        case "'":
        case '/':
          out += e;
          i += 2;
          break;
        case 'n':
          out += '\n';
          i += 2;
          break;
        case 't':
          out += '\t';
          i += 2;
          break;
        case 'r':
          out += '\r';
          i += 2;
          break;
        case 'b':
          out += '\b';
          i += 2;
          break;
        case 'f':
          out += '\f';
          i += 2;
          break;
        case 'u': {
          const hex = text.slice(i + 2, i + 6);
          if (!/^[0-9a-fA-F]{4}$/.test(hex)) fail(`invalid escape '\\u${hex}' (expected 4 hex digits)`, i);
          out += String.fromCharCode(parseInt(hex, 16));
          i += 6;
          break;
        }
        case undefined:
          return fail(`unterminated string starting`, start);
        default:
          return fail(`unknown escape '\\${e}' in string (use \\\\ \\" \\' \\n \\t \\r \\uXXXX)`, i);
      }
      chunk = i;
    }
    out += text.slice(chunk, i);
    if (hasLoneSurrogate(out)) fail(`the string starting here contains an unpaired surrogate (\\uD800-\\uDFFF)`, start);
    return { type: 'string', value: out, pos: start, end: i + 1 };
  }

  private scanArg(start: number): Token {
    const text = this.text;
    let i = start + 1;
    if (!isDigit(text.charCodeAt(i))) {
      if (isIdentStart(text.charCodeAt(i))) fail(`key paths cannot start with '$' ('$' introduces an argument such as $0)`, start);
      fail(`expected an argument index after '$' (such as $0)`, start);
    }
    while (isDigit(text.charCodeAt(i))) i++;
    if (isIdentPart(text.charCodeAt(i))) fail(`unexpected ${describeChar(text, i)} after the argument`, i);
    const index = Number(text.slice(start + 1, i));
    if (index >= LIMITS.maxArgs)
      fail(`argument $${text.slice(start + 1, i)} is out of range (at most ${LIMITS.maxArgs} arguments, $0 to $${LIMITS.maxArgs - 1})`, start);
    return { type: 'arg', index, pos: start, end: i };
  }

  private scanVar(start: number): Token {
    const text = this.text;
    if (text.slice(start + 1, start + 5) !== 'user' || isIdentPart(text.charCodeAt(start + 5))) {
      fail(`unknown variable: only %user.id and %user.<claim> are supported`, start);
    }
    if (text.charCodeAt(start + 5) !== 0x2e) fail(`expected '.id' or '.<claim>' after %user`, start + 5);
    const { segments, end } = this.scanPath(start + 6, '%user claim');
    return { type: 'var', claim: segments, pos: start, end };
  }

  private scanModifier(start: number): Token {
    const text = this.text;
    const inner = text.slice(start + 1, start + 2);
    if ((inner === 'c' || inner === 'C') && text.charCodeAt(start + 2) === 0x5d) {
      return { type: 'modifier', pos: start, end: start + 3 };
    }
    const close = text.indexOf(']', start);
    const shown = close > start && close - start < 10 ? text.slice(start, close + 1) : '[';
    return fail(`unknown modifier ${shown === '[' ? "'['" : `'${shown}'`}: only [c] (case-insensitive) is supported`, start);
  }
}

/** True when the string has a UTF-16 surrogate that is not part of a pair (not valid Unicode). */
export function hasLoneSurrogate(s: string): boolean {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0xd800 || c > 0xdfff) continue;
    if (c <= 0xdbff) {
      const d = s.charCodeAt(i + 1);
      if (d >= 0xdc00 && d <= 0xdfff) {
        i++;
        continue;
      }
    }
    return true;
  }
  return false;
}
