import type { AuthUser } from '../common/user';

/** Who sent a set of changes, and from where. */
export interface ChangeOrigin {
  user: AuthUser;
  clientAddress?: string;
  /** The sending socket (it gets no echo unless BROADCAST_TO_SENDER). */
  socketId?: string;
  /** Server-to-server ingest with the service token: write rules do not apply. */
  trusted?: boolean;
}
