/** The authenticated identity of a socket or request. */
export interface AuthUser {
  /** `sub` claim (then `userId`, then `uid`), or the bare userId in AUTH_MODE=dev. */
  id: string;
  /** All JWT claims (empty in dev mode); rules reach them as %user.<claim>. */
  claims: Record<string, unknown>;
  /** Token expiry, epoch ms, when the token has one. */
  expiresAt?: number;
  /** Authenticated by AUTH_MODE=dev without a token. */
  insecure?: boolean;
}
