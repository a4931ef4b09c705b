import { InvalidPayloadError } from '../errors';
import { LIMITS } from '../types';

const FORBIDDEN_KEYS = new Set(['__proto__']);

/** A plain object (`{}` or `Object.create(null)`), not an array, a Date, a Buffer or a class instance. */
export function isPlainObject(v: unknown): v is Record<string, unknown> {
  if (v === null || typeof v !== 'object' || Array.isArray(v)) return false;
  const proto = Object.getPrototypeOf(v);
  return proto === Object.prototype || proto === null;
}

/**
 * Checks that a value is plain JSON data that is safe to store: no `$`-prefixed or dotted keys at any
 * depth (no operator injection), no backslash or NUL in keys, no `__proto__`, bounded depth and array sizes, finite numbers only.
 * Throws `InvalidPayloadError` naming the first offending path.
 */
export function assertSafeData(value: unknown, path = 'data', depth = 0): void {
  if (depth > LIMITS.maxDepth) throw new InvalidPayloadError(`${path}: nested deeper than ${LIMITS.maxDepth} levels`);
  if (value === null || typeof value === 'string' || typeof value === 'boolean') return;
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) throw new InvalidPayloadError(`${path}: numbers must be finite`);
    return;
  }
  if (Array.isArray(value)) {
    if (value.length > LIMITS.maxArrayLength) throw new InvalidPayloadError(`${path}: arrays may hold at most ${LIMITS.maxArrayLength} items`);
    for (let i = 0; i < value.length; i++) assertSafeData(value[i], `${path}[${i}]`, depth + 1);
    return;
  }
  if (isPlainObject(value)) {
    for (const key of Object.keys(value)) {
      if (key.startsWith('$')) throw new InvalidPayloadError(`${path}: key "${key.slice(0, 40)}" may not start with "$"`);
      if (key.includes('.')) throw new InvalidPayloadError(`${path}: key "${key.slice(0, 40)}" may not contain a dot (".")`);
      if (FORBIDDEN_KEYS.has(key)) throw new InvalidPayloadError(`${path}: key "${key}" is not allowed`);
      if (key.length > 256) throw new InvalidPayloadError(`${path}: keys are limited to 256 characters`);
      if (key.includes('\u0000')) throw new InvalidPayloadError(`${path}: keys may not contain NUL`);
      // The embedded database (FerretDB v1) stores a key with a backslash but then cannot read the
      // document back (every later write of it failed with INTERNAL): refused on every database, so
      // a client behaves the same on MongoDB and on the embedded default.
      if (key.includes('\\')) throw new InvalidPayloadError(`${path}: keys may not contain "\\"`);
      assertSafeData(value[key], `${path}.${key.slice(0, 40)}`, depth + 1);
    }
    return;
  }
  throw new InvalidPayloadError(`${path}: only JSON values are allowed (got ${value === undefined ? 'undefined' : typeof value})`);
}
