import { z } from 'zod';

/**
 * Every environment variable the server reads, declared once. Values come from the environment,
 * over an optional `config/<NODE_ENV>.json` file (see config.loader.ts). Nothing else in the code
 * reads process.env.
 */
const bool = z.union([z.boolean(), z.string()]).transform((v, ctx) => {
  if (typeof v === 'boolean') return v;
  const s = v.trim().toLowerCase();
  if (['true', '1', 'yes', 'on'].includes(s)) return true;
  if (['false', '0', 'no', 'off', ''].includes(s)) return false;
  ctx.addIssue({ code: z.ZodIssueCode.custom, message: `expected true or false, got "${v}"` });
  return z.NEVER;
});
const int = (min: number, max: number) => z.coerce.number().int().min(min).max(max);
const optionalString = z
  .string()
  .optional()
  .transform((v) => (v === undefined || v.trim() === '' ? undefined : v.trim()));
const csv = z
  .union([z.string(), z.array(z.string())])
  .optional()
  .transform((v) => (v === undefined ? undefined : (Array.isArray(v) ? v : v.split(',')).map((s) => s.trim()).filter(Boolean)));

export const envSchema = z.object({
  NODE_ENV: z.enum(['development', 'production', 'test']).default('development'),
  PORT: int(0, 65535).default(3000),
  HOST: z.string().min(1).default('0.0.0.0'),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  LOG_PRETTY: bool.optional(),
  ALLOWED_ORIGINS: csv,
  /** true / false, or the number of proxies in front (a hop count, as Express's `trust proxy`). */
  TRUST_PROXY: z
    .union([z.boolean(), z.string()])
    .transform((v, ctx) => {
      if (typeof v === 'boolean') return v ? 1 : 0;
      const s = v.trim().toLowerCase();
      if (['true', 'yes', 'on'].includes(s)) return 1;
      if (['false', 'no', 'off', ''].includes(s)) return 0;
      if (/^\d{1,2}$/.test(s) && Number(s) <= 32) return Number(s);
      ctx.addIssue({ code: z.ZodIssueCode.custom, message: `expected true, false or a number of proxies (0-32), got "${v}"` });
      return z.NEVER;
    })
    .default(false),
  TRUSTED_PROXIES: csv,
  SHUTDOWN_GRACE_MS: int(1000, 3_600_000).default(25_000),
  API_DOCS: bool.default(true),

  // database
  MONGODB_URI: optionalString,
  MONGODB_POOL_SIZE: int(1, 1000).default(20),
  MONGODB_SOCKET_TIMEOUT_MS: int(0, 3_600_000).default(45_000),
  DATA_DIR: z.string().min(1).default('./data'),
  FERRETDB_BIN: optionalString,

  // auth
  AUTH_MODE: z.enum(['jwt', 'dev']).optional(),
  AUTH_JWT_SECRET: optionalString,
  AUTH_JWKS_URL: optionalString.pipe(z.string().url().optional()),
  AUTH_JWT_ISSUER: optionalString,
  AUTH_JWT_AUDIENCE: optionalString,
  AUTH_SERVICE_TOKEN: optionalString,
  SERVER_SECRET: optionalString,
  ADMIN_USER_IDS: csv,
  ADMIN_CLAIM: optionalString,
  TOKEN_EXPIRY_GRACE_MS: int(0, 3_600_000).default(30_000),
  AUTH_JWKS_CACHE_MAX_AGE_MS: int(1000, 7 * 86_400_000).default(600_000),
  AUTH_JWKS_COOLDOWN_MS: int(0, 3_600_000).default(30_000),
  AUTH_JWKS_TIMEOUT_MS: int(100, 60_000).default(5_000),

  // limits
  MAX_CONNECTIONS_PER_USER: int(1, 1_000_000).optional(),
  MAX_CONNECTIONS_PER_IP: int(1, 10_000_000).optional(),
  MAX_CONNECTIONS: int(1, 10_000_000).default(100_000),
  JOIN_TIMEOUT_MS: int(100, 600_000).default(10_000),
  LIMITS_NODE_LEASE_MS: int(500, 600_000).default(15_000),
  SYNC_RATE_LIMIT_MAX: int(1, 100_000_000).default(50),
  SYNC_RATE_LIMIT_WINDOW_MS: int(100, 86_400_000).default(10_000),
  RATE_LIMIT_DISABLED: bool.optional(),
  HTTP_RATE_LIMIT_MAX: int(1, 100_000_000).default(300),
  HTTP_RATE_LIMIT_WINDOW_MS: int(100, 86_400_000).default(60_000),
  MAX_CHANGE_BYTES: int(256, 64 * 1024 * 1024).default(256 * 1024),
  MAX_BATCH_SIZE: int(1, 10_000).default(500),
  SOCKET_MAX_HTTP_BUFFER_SIZE: int(1024, 512 * 1024 * 1024).optional(),
  MAX_SOCKET_BUFFER_BYTES: int(64 * 1024, 1024 * 1024 * 1024).default(16 * 1024 * 1024),
  QUERY_MATCH_BUDGET: int(10_000, 1_000_000_000).default(8_000_000),
  READ_RATE_LIMIT_MAX: int(1, 100_000_000).default(1000),
  READ_RATE_LIMIT_WINDOW_MS: int(100, 86_400_000).default(10_000),
  MAX_SUBSCRIPTIONS_PER_SOCKET: int(1, 10_000).default(100),
  MAX_CONCURRENT_BOOTSTRAPS: int(1, 10_000).default(4),
  BOOTSTRAP_BUFFER_BYTES: int(16 * 1024, 512 * 1024 * 1024).default(1024 * 1024),
  BOOTSTRAP_DRAIN_TIMEOUT_MS: int(1000, 3_600_000).default(60_000),
  QUERY_MAX_TIME_MS: int(0, 3_600_000).default(30_000),

  // sync
  CONFLICT_STRATEGY: z.enum(['lww', 'field', 'server-wins', 'client-wins']).default('lww'),
  MAX_CLOCK_SKEW_MS: int(0, 365 * 86_400_000).default(60_000),
  BROADCAST_TO_SENDER: bool.default(false),
  BOOTSTRAP_PAGE_SIZE: int(1, 10_000).default(500),
  FEED_READ_AHEAD: int(0, 8).default(1),
  CHANGE_RETENTION_DAYS: z.coerce.number().positive().max(3650).default(30),
  RETENTION_SWEEP_INTERVAL_MS: int(1000, 86_400_000).default(3_600_000),
  SYNC_RULES_FILE: optionalString,
  SYNC_SCHEMAS_FILE: optionalString,
  SYNC_LOCK_TTL_MS: int(200, 600_000).default(10_000),
  DELIVERY_POLL_INTERVAL_MS: int(20, 60_000).default(250),
  /** No other node can share the database: leases in memory. Default: true with the embedded database and no REDIS_URL. */
  SYNC_SINGLE_NODE: optionalString.pipe(bool.optional()),

  // scale-out
  REDIS_URL: optionalString.pipe(
    z
      .string()
      .regex(/^rediss?:\/\/\S+$/, 'a redis:// or rediss:// URL')
      .optional(),
  ),
  REDIS_CHANNEL_PREFIX: z
    .string()
    .regex(/^[A-Za-z0-9_.:-]{1,64}$/, 'letters, digits, _ . : and - only (at most 64)')
    .default('sync'),
  REDIS_MAX_MESSAGE_BYTES: int(16 * 1024, 16 * 1024 * 1024).default(4 * 1024 * 1024),
  WEB_PUBSUB_CONNECTION_STRING: optionalString,
  WEB_PUBSUB_HUB_NAME: z
    .string()
    .regex(/^[A-Za-z][A-Za-z0-9_-]{0,127}$/, 'letters, digits, _ and - only')
    .default('Hub'),
});

export type Env = z.infer<typeof envSchema>;

/** The resolved, typed configuration the rest of the application injects (APP_CONFIG). */
export interface AppConfig {
  env: Env['NODE_ENV'];
  isProduction: boolean;
  /**
   * The secret the server derives its own keys from (HKDF, one per use: cluster bus signatures,
   * cursor tags): SERVER_SECRET, else AUTH_JWT_SECRET, else AUTH_SERVICE_TOKEN (every node has
   * the same); outside production without any of them, a fixed development value.
   */
  serverSecret: { value: string; source: 'SERVER_SECRET' | 'AUTH_JWT_SECRET' | 'AUTH_SERVICE_TOKEN' | 'development' };
  server: {
    port: number;
    host: string;
    corsOrigins: string[] | '*';
    trustProxy: boolean;
    /** TRUST_PROXY as a hop count: how many proxies stand in front (0: none). */
    proxyHops: number;
    /** Proxy addresses / CIDRs trusted to set X-Forwarded-For (empty: only the direct peer). */
    trustedProxies: string[];
    logLevel: Env['LOG_LEVEL'];
    logPretty: boolean;
    /** SIGTERM: drain, close and exit within this (Helm's terminationGracePeriodSeconds is above it). */
    shutdownGraceMs: number;
    /** Serve the OpenAPI document and UI at /docs and /docs-json (API_DOCS, default true). */
    apiDocs: boolean;
  };
  mongodb: {
    uri?: string;
    poolSize: number;
    socketTimeoutMS: number;
    /** maxTimeMS of every read query (0: none). */
    queryMaxTimeMS: number;
    dataDir: string;
    ferretdbBin?: string;
  };
  auth: {
    mode: 'jwt' | 'dev';
    jwtSecret?: string;
    jwksUrl?: string;
    issuer?: string;
    audience?: string;
    serviceToken?: string;
    adminUserIds: string[];
    /** ADMIN_CLAIM `<claim>:<value>`: a token whose claim equals (or, as an array, holds) the value is an admin. Off when unset. */
    adminClaim?: { name: string; value: string };
    tokenExpiryGraceMs: number;
    jwksCacheMaxAgeMs: number;
    jwksCooldownMs: number;
    jwksTimeoutMs: number;
  };
  limits: {
    maxConnectionsPerUser: number;
    maxConnectionsPerIp: number;
    maxConnections: number;
    /** A socket that has not joined within this long is disconnected (it holds a per-address slot). */
    joinTimeoutMs: number;
    /** With REDIS_URL: how long the connection slots of a node that stopped renewing its lease (died) still count. */
    nodeLeaseMs: number;
    rateLimitMax: number;
    rateLimitWindowMs: number;
    rateLimitDisabled: boolean;
    httpRateLimitMax: number;
    httpRateLimitWindowMs: number;
    maxChangeBytes: number;
    maxBatchSize: number;
    maxHttpBufferSize: number;
    /** A socket with more than this queued for it (not read by its client) is disconnected. */
    maxSocketBufferBytes: number;
    /** Work units (≈ characters compared) one user's subscriptions may spend matching one change. */
    queryMatchBudget: number;
    /** Read budget per user (per address before join): tokens per window (ReadBudgetService). */
    readRateLimitMax: number;
    readRateLimitWindowMs: number;
    maxSubscriptionsPerSocket: number;
    /** Subscription reads (bootstrap pages, counts) running at once on this node, handed out fairly per user. */
    maxConcurrentBootstraps: number;
    /** A bootstrap sends its next page only once the socket has less than this queued. */
    bootstrapBufferBytes: number;
    /** A socket that has not read its queued bootstrap pages for this long is disconnected. */
    bootstrapDrainTimeoutMs: number;
  };
  sync: {
    conflictStrategy: Env['CONFLICT_STRATEGY'];
    maxClockSkewMs: number;
    broadcastToSender: boolean;
    bootstrapPageSize: number;
    /** Feed windows a get_changes reads ahead of the one it visits (FEED_READ_AHEAD). */
    feedReadAhead: number;
    changeRetentionDays: number;
    retentionSweepIntervalMs: number;
    rulesFile?: string;
    /** JSON Schemas per collection (SYNC_SCHEMAS_FILE); the rules file may carry them too. */
    schemasFile?: string;
    lockTtlMs: number;
    /** How often each node reads the feed for changes no one told it about (lost bus messages). */
    deliveryPollMs: number;
    /**
     * No other node can write to this database (SYNC_SINGLE_NODE; default: the embedded database, no
     * REDIS_URL): document leases are kept in memory, no `_sync_locks` round trips.
     */
    singleNode: boolean;
  };
  scale: {
    redisUrl?: string;
    /** Channel `<prefix>:<database name>:changes` carries applied changes between nodes. */
    redisChannelPrefix: string;
    /** A bus message larger than this is split, or its change dropped when it is alone. */
    redisMaxMessageBytes: number;
    webPubSubConnectionString?: string;
    webPubSubHub: string;
  };
}
