/**
 * Change-feed cursors. A cursor names a position (a sequence number) in the feed. On the wire it is
 * opaque and totally ordered as a string (PROTOCOL.md); encodeCursor / decodeCursor are the only
 * functions that know its format.
 *
 * Formats:
 *  - `c2` + 16 hex digits + `.` + a 64-bit tag (base64url): what a server issues once it has a
 *    signer (configureCursorSigner, called at boot with a key derived from the server secret). The
 *    tag is a MAC of the position, so a client cannot make up a cursor: a forged or altered one is
 *    refused. The fixed-width position keeps string order = feed order.
 *  - `c1` + 16 hex digits: the unsigned format of earlier versions (and of tools without a signer).
 *    A server with a signer reads any `c1` cursor as position 0: the client reads again from the
 *    start of what it may see (or gets CURSOR_EXPIRED when retention has purged that), so old
 *    clients keep working and no one can pick a position by writing one.
 *
 * Not hidden: the position itself (a client can tell how many changes the whole feed received
 * between two of its cursors). Hiding it would cost the string order the protocol promises.
 */
const V1 = 'c1';
const V2 = 'c2';
const HEX_DIGITS = 16;
const TAG_CHARS = 11; // 64 bits in base64url

/** Computes a tag (base64url, at least 11 characters) of a string with the server's key. */
export type CursorSigner = (data: string) => string;

let signer: CursorSigner | undefined;
/** Earlier signers still accepted (several servers in one process, as in tests, or a key change at runtime). */
const accepted: CursorSigner[] = [];

/**
 * Makes this process issue signed cursors and refuse unsigned or forged ones. The server calls it
 * at boot with an HMAC keyed from its secret (same secret on every node: cursors work on any node).
 */
export function configureCursorSigner(fn: CursorSigner | undefined): void {
  signer = fn;
  if (fn && !accepted.includes(fn)) accepted.push(fn);
  if (accepted.length > 8) accepted.shift();
}

function hex(seq: number): string {
  return seq.toString(16).padStart(HEX_DIGITS, '0');
}

export function encodeCursor(seq: number): string {
  if (!Number.isSafeInteger(seq) || seq < 0) throw new RangeError(`bad feed position ${seq}`);
  const body = hex(seq);
  if (!signer) return V1 + body;
  return `${V2}${body}.${signer(V2 + body).slice(0, TAG_CHARS)}`;
}

function position(h: string): number | null {
  if (h.length !== HEX_DIGITS) return null;
  for (let i = 0; i < h.length; i++) {
    const c = h.charCodeAt(i);
    if (!((c >= 48 && c <= 57) || (c >= 97 && c <= 102))) return null; // 0-9 a-f
  }
  const n = parseInt(h, 16);
  return Number.isSafeInteger(n) ? n : null;
}

/** Returns the position, or null when the string is not a cursor this server made. */
export function decodeCursor(cursor: unknown): number | null {
  if (typeof cursor !== 'string') return null;
  if (cursor.length === V1.length + HEX_DIGITS && cursor.startsWith(V1)) {
    const n = position(cursor.slice(V1.length));
    if (n === null) return null;
    return signer ? 0 : n; // see above: unsigned cursors carry no position a signing server trusts
  }
  if (cursor.length !== V2.length + HEX_DIGITS + 1 + TAG_CHARS || !cursor.startsWith(V2) || cursor[V2.length + HEX_DIGITS] !== '.') return null;
  const body = cursor.slice(V2.length, V2.length + HEX_DIGITS);
  const n = position(body);
  if (n === null || !accepted.length) return null;
  const tag = cursor.slice(V2.length + HEX_DIGITS + 1);
  for (const fn of accepted) if (sameTag(fn(V2 + body).slice(0, TAG_CHARS), tag)) return n;
  return null;
}

/** Compares without stopping at the first difference (no timing hint on how much of a tag is right). */
function sameTag(a: string, b: string): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a.charCodeAt(i) ^ b.charCodeAt(i);
  return diff === 0;
}

export function compareCursors(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
