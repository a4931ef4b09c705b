/**
 * The sync client SDK, Node entry point (the browser entry is browser.ts). A storage given to the
 * SyncClient constructor as a string is a FileStorage directory here.
 */
import * as path from 'node:path';
import { FileStorage } from './storage/file-storage';
import { setStringStorageResolver } from './sync-client';

export * from './sync-client';
export * from './local-view';
export * from './outbox';
export * from './emitter';
export * from './object-id';
export { setQueryCompiler, compileFilter } from './matcher';
export * from './storage/storage.types';
export { MemoryStorage } from './storage/memory-storage';
export { FileStorage, StorageLockedError, type FileStorageOptions } from './storage/file-storage';
export { IndexedDbStorage, type IndexedDbStorageOptions } from './storage/indexeddb-storage';
export { KeyValueStorage, type KeyValueStore, type KeyValueStorageOptions } from './storage/key-value-storage';
export { ErrorCode } from '../../protocol/src/errors';
export type { DeliveredChange, SyncDocument, Operation, SubscriptionSpec } from '../../protocol/src/types';

setStringStorageResolver((spec, userId, logger) => {
  const m = /^mongodb(?:\+srv)?:\/\/[^/]*\/?([^?]*)/.exec(spec);
  if (m) {
    const db = (m[1] || 'default').replace(/[^A-Za-z0-9_.-]/g, '_');
    const dir = path.join('.sync-client', db, (userId || 'anonymous').replace(/[^A-Za-z0-9_.-]/g, '_'));
    logger?.warn(
      `sync-client: a local MongoDB (${spec.replace(/\/\/[^@/]*@/, '//***@')}) is not used by this SDK; the outbox is kept in ${path.resolve(dir)} (FileStorage) instead`,
    );
    return new FileStorage(dir);
  }
  return new FileStorage(spec);
});
