/**
 * A reference LIKE for the query specs: dynamic programming over code points (`*` any run, `?` one
 * code point), comparing code points after `fold` (identity for a case-sensitive LIKE).
 */
export function likeReference(pattern: string, s: string, fold: (c: string) => string = (c) => c): boolean {
  const p = [...pattern];
  const t = [...s];
  let row = new Array<boolean>(t.length + 1).fill(false);
  row[0] = true;
  for (const pc of p) {
    const next = new Array<boolean>(t.length + 1).fill(false);
    if (pc === '*') {
      let any = false;
      for (let j = 0; j <= t.length; j++) {
        any = any || row[j];
        next[j] = any;
      }
    } else {
      for (let j = 1; j <= t.length; j++) next[j] = row[j - 1] && (pc === '?' || fold(pc) === fold(t[j - 1]));
    }
    row = next;
  }
  return row[t.length];
}
