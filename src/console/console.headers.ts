import { join, sep } from 'node:path';
import type { ServerResponse } from 'node:http';

/** The console page loads only its own files and talks only to its own server. */
export const CONSOLE_CSP =
  "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/** `setHeaders` of the static files in `publicDir`: the console's get a strict Content-Security-Policy and no framing. */
export function staticHeaders(publicDir: string): (res: ServerResponse, file: string) => void {
  const consoleDir = join(publicDir, 'console') + sep;
  return (res, file) => {
    if (!file.startsWith(consoleDir)) return;
    res.setHeader('Content-Security-Policy', CONSOLE_CSP);
    res.setHeader('X-Frame-Options', 'DENY');
    res.setHeader('Referrer-Policy', 'no-referrer');
  };
}
