import { cloneJson, StateImage, StorageWrite, StoredState, SyncStorage } from './storage.types';

/**
 * Keeps everything in memory: nothing survives the process. Reusing the same instance in a new
 * SyncClient behaves like a restart that kept its state (handy in tests).
 */
export class MemoryStorage implements SyncStorage {
  readonly kind = 'memory';
  readonly durable = false;
  private readonly image = new StateImage();

  async load(): Promise<StoredState> {
    return cloneJson(this.image.toState());
  }

  async write(w: StorageWrite): Promise<void> {
    this.image.apply(cloneJson(w));
  }

  async close(): Promise<void> {}
}
