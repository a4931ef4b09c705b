import { Logger } from '@nestjs/common';
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import Redis from 'ioredis';

/**
 * Counts connections across every node that shares a Redis (REDIS_URL), so that a limit holds for
 * the deployment, not per node. One sorted set per counted key (`<prefix>:limits:user:<id>`,
 * `<prefix>:limits:ip:<address>`), members `<nodeId>|<socketId>`. Each node holds a lease (`<prefix>:limits:node:<nodeId>`, expiring
 * after LIMITS_NODE_LEASE_MS, refreshed at a third of it); members of a node whose lease is gone are
 * not counted and are removed by the next take, so a node that dies with sockets counted frees them
 * within the lease time.
 *
 * The check and the insert are one Lua script, so two nodes cannot both take the last slot.
 * The script reads the lease keys of the nodes it finds: fine on one Redis (primary/replica,
 * Sentinel); not meant for Redis Cluster.
 *
 * When Redis is unreachable the limit falls back to this node's own count (the local limit still
 * applies): a Redis outage must not refuse every connection.
 */
export class RedisConnectionCounter {
  private readonly logger = new Logger('ConnectionLimits');
  readonly nodeId = `${hostname()}-${process.pid}-${randomBytes(3).toString('hex')}`;
  private readonly redis: Redis;
  private refresher?: NodeJS.Timeout;
  private warned = false;

  constructor(
    url: string,
    private readonly prefix: string,
    private readonly leaseMs: number,
  ) {
    this.redis = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 1, enableOfflineQueue: false, connectionName: `sync-limits-${this.nodeId}` });
    this.redis.on('error', () => undefined); // reported once per outage by the callers below
    this.redis.defineCommand('takeSlot', { numberOfKeys: 1, lua: TAKE_SCRIPT });
  }

  async start(): Promise<void> {
    await this.redis.connect().catch((e: Error) => this.warn(`cannot reach Redis for connection limits (${e.message}): counting per node until it is back`));
    await this.renewLease();
    this.refresher = setInterval(() => void this.renewLease(), Math.max(100, Math.floor(this.leaseMs / 3)));
    this.refresher.unref();
  }

  private leaseKey(node = this.nodeId): string {
    return `${this.prefix}:limits:node:${node}`;
  }

  private async renewLease(): Promise<void> {
    try {
      await this.redis.set(this.leaseKey(), '1', 'PX', this.leaseMs);
      this.warned = false;
    } catch (e) {
      this.warn(`cannot renew this node's lease in Redis (${(e as Error).message}): counting per node until it is back`);
    }
  }

  /** Takes a slot of `key` for the socket when fewer than `max` live ones exist; true when taken (or Redis is down). */
  async take(kind: 'user' | 'ip', key: string, socketId: string, max: number): Promise<boolean> {
    return (await this.takeOrReplace(kind, key, socketId, max)) !== 'refused';
  }

  /**
   * take, and when the key is full and `victim` (a socket of this node) holds one of its slots, hands
   * that slot to `socketId` in the same step ('replaced': the caller must disconnect the victim).
   * 'taken' also when Redis is down (the caller's local count still applies).
   */
  async takeOrReplace(kind: 'user' | 'ip', key: string, socketId: string, max: number, victim?: string): Promise<'taken' | 'replaced' | 'refused'> {
    try {
      const r = await (this.redis as Redis & { takeSlot(k: string, ...a: (string | number)[]): Promise<number> }).takeSlot(
        this.slotKey(kind, key),
        `${this.nodeId}|${socketId}`,
        max,
        Date.now(),
        `${this.prefix}:limits:node:`,
        victim === undefined ? '' : `${this.nodeId}|${victim}`,
      );
      return r === 2 ? 'replaced' : r === 1 ? 'taken' : 'refused';
    } catch (e) {
      this.warn(`connection limit check in Redis failed (${(e as Error).message}): counting per node`);
      return 'taken';
    }
  }

  release(kind: 'user' | 'ip', key: string, socketId: string): void {
    this.redis.zrem(this.slotKey(kind, key), `${this.nodeId}|${socketId}`).catch(() => undefined);
  }

  /** Live slots of a key over all nodes (tests, /stats). */
  async count(kind: 'user' | 'ip', key: string): Promise<number> {
    const members = await this.redis.zrange(this.slotKey(kind, key), 0, -1);
    let n = 0;
    for (const m of members) if (await this.redis.exists(this.leaseKey(m.slice(0, m.indexOf('|'))))) n++;
    return n;
  }

  private slotKey(kind: 'user' | 'ip', key: string): string {
    return `${this.prefix}:limits:${kind}:${key}`;
  }

  private warn(message: string): void {
    if (this.warned) return;
    this.warned = true;
    this.logger.warn(message);
  }

  async close(): Promise<void> {
    if (this.refresher) clearInterval(this.refresher);
    // an orderly stop gives its slots back at once (a crash leaves them to the lease)
    await this.redis.del(this.leaseKey()).catch(() => undefined);
    this.redis.disconnect();
  }
}

/**
 * KEYS[1] the slot set; ARGV: member, max, now, lease key prefix, victim member ('' for none).
 * Drops members of nodes without a lease, then adds the member if fewer than max remain (1); when
 * full, replaces the victim by the member if the victim holds a slot (2); else refuses (0). (The set
 * disappears with its last member; members of a dead node stay until the next take of that key.)
 */
const TAKE_SCRIPT = `
local members = redis.call('ZRANGE', KEYS[1], 0, -1)
local live = 0
local mine = false
for _, m in ipairs(members) do
  local bar = string.find(m, '|', 1, true)
  local node = bar and string.sub(m, 1, bar - 1) or m
  if redis.call('EXISTS', ARGV[4] .. node) == 1 then
    live = live + 1
    if m == ARGV[1] then mine = true end
  else
    redis.call('ZREM', KEYS[1], m)
  end
end
if mine then return 1 end
if live >= tonumber(ARGV[2]) then
  if ARGV[5] ~= '' and redis.call('ZREM', KEYS[1], ARGV[5]) == 1 then
    redis.call('ZADD', KEYS[1], ARGV[3], ARGV[1])
    return 2
  end
  return 0
end
redis.call('ZADD', KEYS[1], ARGV[3], ARGV[1])
return 1
`;
