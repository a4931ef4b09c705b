import type { Socket } from 'socket.io';
import { queuedBytes } from './socket-buffer';

/**
 * Waits until the socket has fewer than `lowWater` bytes queued for its client (see queuedBytes),
 * so a sender can produce its next message only once the client has taken the previous ones: the
 * server then holds at most `lowWater` plus one message per sender for a client that stops reading.
 *
 * Resolves 'drained', 'closed' (the socket went away), or 'timeout' (nothing was read for
 * `timeoutMs`: the client is not reading). Polls, from 5 ms up to 100 ms between looks: waiting
 * sockets are few (one per bootstrap in progress) and the check is cheap.
 */
export async function waitForDrain(socket: Socket, lowWater: number, timeoutMs: number): Promise<'drained' | 'closed' | 'timeout'> {
  let queued = queuedBytes(socket);
  if (queued < lowWater) return socket.connected ? 'drained' : 'closed';
  let deadline = Date.now() + timeoutMs;
  let delay = 5;
  for (;;) {
    if (!socket.connected) return 'closed';
    await new Promise((r) => setTimeout(r, delay));
    if (!socket.connected) return 'closed';
    const now = queuedBytes(socket);
    if (now < lowWater) return 'drained';
    if (now < queued) deadline = Date.now() + timeoutMs; // progress: the client is reading, slowly
    queued = now;
    if (Date.now() >= deadline) return 'timeout';
    delay = Math.min(100, delay * 2);
  }
}
