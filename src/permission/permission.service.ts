import { Injectable } from '@nestjs/common';
import type { SyncDocument } from '@sync/protocol';
import type { AuthUser } from '../auth/auth.types';

/**
 * Who may read and write which documents. This default allows everything (development without a
 * rules file); the rules-file implementation replaces it (PermissionModule).
 */
@Injectable()
export class PermissionService {
  /** Whether `user` may see `doc` of `collection`. */
  canRead(_user: AuthUser, _collection: string, _doc: SyncDocument): boolean {
    return true;
  }

  /** Whether `user` may change the document from `before` to `after` (null = missing / deleted). */
  canWrite(_user: AuthUser, _collection: string, _before: SyncDocument | null, _after: SyncDocument | null): boolean {
    return true;
  }

  /** MongoDB filter selecting what `user` may read in `collection` ({} = all, null = nothing). */
  readFilter(_user: AuthUser, _collection: string): Record<string, unknown> | null {
    return {};
  }
}
