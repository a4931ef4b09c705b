import { Logger } from '@nestjs/common';
import { ErrorCode, FailureAck, isSyncError, UnavailableError } from '@sync/protocol';

const logger = new Logger('Ack');

/** Errors from the MongoDB driver that mean "the database could not be reached". */
export function isUnavailableError(e: unknown): boolean {
  const name = (e as { name?: string } | null)?.name ?? '';
  const msg = (e as { message?: string } | null)?.message ?? '';
  return (
    /MongoServerSelectionError|MongoNetworkError|MongoNetworkTimeoutError|MongoNotConnectedError|MongoTopologyClosedError|PoolClearedError|MongoPoolClearedError/.test(
      name,
    ) || /ECONNREFUSED|connection .* closed|Topology is closed|Client must be connected|not connected/i.test(msg)
  );
}

/** Maps any error to the protocol's failure ack, without leaking internals. */
export function toFailureAck(e: unknown, context?: string): FailureAck {
  if (isSyncError(e)) return e.toAck();
  if (isUnavailableError(e)) return new UnavailableError().toAck();
  logger.error(`${context ?? 'handler'} failed: ${(e as Error)?.stack ?? String(e)}`);
  return { success: false, code: ErrorCode.INTERNAL, error: 'Internal error' };
}
