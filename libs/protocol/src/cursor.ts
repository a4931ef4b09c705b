/**
 * Change-feed cursors. A cursor names a position (a sequence number) in the feed. On the wire it is
 * opaque: `c1` + 16 hex digits, so that cursors also compare correctly as strings.
 */
const PREFIX = 'c1';

export function encodeCursor(seq: number): string {
  if (!Number.isSafeInteger(seq) || seq < 0) throw new RangeError(`bad feed position ${seq}`);
  return PREFIX + seq.toString(16).padStart(16, '0');
}

/** Returns the position, or null when the string is not a cursor this server made. */
export function decodeCursor(cursor: unknown): number | null {
  if (typeof cursor !== 'string' || cursor.length !== PREFIX.length + 16 || !cursor.startsWith(PREFIX)) return null;
  const hex = cursor.slice(PREFIX.length);
  if (!/^[0-9a-f]{16}$/.test(hex)) return null;
  const n = parseInt(hex, 16);
  return Number.isSafeInteger(n) ? n : null;
}

export function compareCursors(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
