/**
 * The sync client SDK, browser entry point (bundled by scripts/build-client.ts into the package's global
 * `SyncSdk`). A storage given to the SyncClient constructor as a string is an IndexedDB name here.
 */
import { IndexedDbStorage } from './storage/indexeddb-storage';
import { MemoryStorage } from './storage/memory-storage';
import { setStringStorageResolver } from './sync-client';

export * from './sync-client';
export * from './local-view';
export * from './emitter';
export * from './object-id';
export { setQueryCompiler } from './matcher';
export { MemoryStorage } from './storage/memory-storage';
export { IndexedDbStorage } from './storage/indexeddb-storage';
export { KeyValueStorage, type KeyValueStore, type KeyValueStorageOptions } from './storage/key-value-storage';
export { ErrorCode } from '../../protocol/src/errors';

setStringStorageResolver((spec, userId, logger) => {
  if ((globalThis as { indexedDB?: unknown }).indexedDB === undefined) {
    logger?.warn('sync-client: IndexedDB is not available: changes are kept in memory only');
    return new MemoryStorage();
  }
  const name = /^mongodb(\+srv)?:/.test(spec) ? `default:${userId}` : spec;
  return new IndexedDbStorage(name);
});
