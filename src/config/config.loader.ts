import * as fs from 'node:fs';
import { isIP } from 'node:net';
import * as path from 'node:path';
import { AppConfig, envSchema } from './config.schema';
import { parseWebPubSubConnectionString } from './web-pubsub-connection-string';

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`Invalid configuration:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
    this.name = 'ConfigError';
  }
}

const PLACEHOLDER_SECRETS = [/^your[-_ ]?secret/i, /^change[-_ ]?me/i, /^secret$/i, /^<.*>$/, /^placeholder/i, /^xxx+$/i, /^test$/i];

function isIpOrCidr(v: string): boolean {
  const [addr, bits, ...rest] = v.split('/');
  const family = isIP(addr);
  if (!family || rest.length) return false;
  if (bits === undefined) return true;
  return /^\d{1,3}$/.test(bits) && Number(bits) <= (family === 4 ? 32 : 128);
}

/**
 * ADMIN_CLAIM `<claim>:<value>`, split at the last `:` so namespaced claim names
 * (`https://example.com/roles:sync-admin`) work; the value cannot contain `:`.
 */
function parseAdminClaim(raw: string | undefined, problems: string[]): { name: string; value: string } | undefined {
  if (raw === undefined) return undefined;
  const at = raw.lastIndexOf(':');
  const name = at > 0 ? raw.slice(0, at).trim() : '';
  const value = at > 0 ? raw.slice(at + 1).trim() : '';
  if (!name || !value || name.length > 256 || value.length > 256) {
    problems.push('ADMIN_CLAIM: expected <claim>:<value>, e.g. roles:sync-admin');
    return undefined;
  }
  if (['sub', 'iss', 'aud', 'exp', 'nbf', 'iat', 'jti'].includes(name)) {
    problems.push(`ADMIN_CLAIM: "${name}" is a registered claim; list admin subjects in ADMIN_USER_IDS instead`);
    return undefined;
  }
  return { name, value };
}

/** The optional JSON file's sections, mapped onto environment variable names (the env wins). */
const FILE_KEYS: Record<string, Record<string, string>> = {
  server: { port: 'PORT', host: 'HOST', corsOrigins: 'ALLOWED_ORIGINS', trustProxy: 'TRUST_PROXY', logLevel: 'LOG_LEVEL' },
  sync: {
    maxBatchSize: 'MAX_BATCH_SIZE',
    changeRetentionDays: 'CHANGE_RETENTION_DAYS',
    conflictStrategy: 'CONFLICT_STRATEGY',
    maxClockSkewMs: 'MAX_CLOCK_SKEW_MS',
    bootstrapPageSize: 'BOOTSTRAP_PAGE_SIZE',
    maxChangeBytes: 'MAX_CHANGE_BYTES',
    rulesFile: 'SYNC_RULES_FILE',
    // accepted for compatibility with the original README; the sync engine always uses optimistic
    // compare-and-set writes, so there is nothing to switch off.
    enableOptimisticLocking: '',
  },
  mongodb: { uri: 'MONGODB_URI', poolSize: 'MONGODB_POOL_SIZE', socketTimeoutMS: 'MONGODB_SOCKET_TIMEOUT_MS' },
};

function readConfigFile(nodeEnv: string, configDir: string, problems: string[]): Record<string, unknown> {
  const file = path.join(configDir, `${nodeEnv}.json`);
  if (!fs.existsSync(file)) return {};
  let json: unknown;
  try {
    json = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (e) {
    problems.push(`${file}: not valid JSON (${(e as Error).message})`);
    return {};
  }
  if (!json || typeof json !== 'object' || Array.isArray(json)) {
    problems.push(`${file}: must hold a JSON object`);
    return {};
  }
  const out: Record<string, unknown> = {};
  for (const [section, value] of Object.entries(json as Record<string, unknown>)) {
    const keys = FILE_KEYS[section];
    if (!keys) {
      problems.push(`${file}: unknown section "${section}" (known: ${Object.keys(FILE_KEYS).join(', ')})`);
      continue;
    }
    if (!value || typeof value !== 'object' || Array.isArray(value)) {
      problems.push(`${file}: "${section}" must be an object`);
      continue;
    }
    for (const [key, v] of Object.entries(value as Record<string, unknown>)) {
      const envName = keys[key];
      if (envName === undefined) problems.push(`${file}: unknown key "${section}.${key}"`);
      else if (envName) out[envName] = Array.isArray(v) ? v.map(String) : typeof v === 'boolean' ? v : String(v);
    }
  }
  return out;
}

/**
 * Validates the environment (over config/<NODE_ENV>.json) and returns the typed config, or throws
 * a ConfigError that lists every problem at once.
 */
export function loadConfig(env: Record<string, string | undefined> = process.env, configDir = path.resolve(process.cwd(), 'config')): AppConfig {
  const problems: string[] = [];
  const nodeEnv = env.NODE_ENV && env.NODE_ENV.trim() ? env.NODE_ENV.trim() : 'development';
  const fromFile = readConfigFile(nodeEnv, configDir, problems);
  const merged: Record<string, unknown> = { ...fromFile };
  for (const key of Object.keys(envSchema.shape)) {
    const v = env[key];
    // an empty value (as in .env.example) means "not set": the default applies
    if (v !== undefined && v.trim() !== '') merged[key] = v;
  }
  const parsed = envSchema.safeParse(merged);
  if (!parsed.success) {
    for (const issue of parsed.error.issues) {
      const key = issue.path.join('.');
      const got = merged[key];
      const shown = /SECRET|TOKEN|PASSWORD|CONNECTION_STRING|REDIS_URL/.test(key) ? '(hidden)' : JSON.stringify(got);
      problems.push(`${key}: ${issue.message}${got === undefined ? '' : ` (got ${shown})`}`);
    }
    throw new ConfigError(problems);
  }
  const e = parsed.data;
  const prod = e.NODE_ENV === 'production';

  const authMode = e.AUTH_MODE ?? (!prod && !e.AUTH_JWT_SECRET && !e.AUTH_JWKS_URL ? 'dev' : 'jwt');
  if (prod) {
    if (authMode === 'dev') problems.push('AUTH_MODE: "dev" (no token checks) is refused when NODE_ENV=production');
    if (!e.AUTH_JWT_SECRET && !e.AUTH_JWKS_URL) problems.push('AUTH_JWT_SECRET or AUTH_JWKS_URL: one is required when NODE_ENV=production');
    if (!e.SYNC_RULES_FILE) problems.push('SYNC_RULES_FILE: a rules file is required when NODE_ENV=production (without one every user could read everything)');
    if (e.AUTH_JWKS_URL && (!e.AUTH_JWT_ISSUER || !e.AUTH_JWT_AUDIENCE))
      problems.push(
        `${[!e.AUTH_JWT_ISSUER && 'AUTH_JWT_ISSUER', !e.AUTH_JWT_AUDIENCE && 'AUTH_JWT_AUDIENCE'].filter(Boolean).join(' and ')}: ` +
          'required with AUTH_JWKS_URL when NODE_ENV=production (a key set is often shared by many apps: without both, their tokens would be accepted here)',
      );
    if (!e.ALLOWED_ORIGINS || e.ALLOWED_ORIGINS.includes('*'))
      problems.push('ALLOWED_ORIGINS: list the allowed origins when NODE_ENV=production ("*" is refused)');
  }
  if (authMode === 'jwt' && !e.AUTH_JWT_SECRET && !e.AUTH_JWKS_URL) problems.push('AUTH_MODE=jwt needs AUTH_JWT_SECRET or AUTH_JWKS_URL');
  if (e.AUTH_JWT_SECRET) {
    if (PLACEHOLDER_SECRETS.some((re) => re.test(e.AUTH_JWT_SECRET!)))
      problems.push('AUTH_JWT_SECRET: looks like a placeholder; use a random secret of 32+ bytes');
    else if (prod && Buffer.byteLength(e.AUTH_JWT_SECRET) < 32) problems.push('AUTH_JWT_SECRET: must be at least 32 bytes long in production');
  }
  if (e.TRUSTED_PROXIES?.length) {
    if (!e.TRUST_PROXY) problems.push('TRUSTED_PROXIES: only used with TRUST_PROXY=true');
    const bad = e.TRUSTED_PROXIES.filter((p) => !isIpOrCidr(p));
    if (bad.length) problems.push(`TRUSTED_PROXIES: not an IP address or CIDR range: ${bad.join(', ')}`);
  }
  // REDIS_URL is for several nodes on one database: leases kept in one node's memory would not hold them apart
  if (e.SYNC_SINGLE_NODE && e.REDIS_URL) problems.push('SYNC_SINGLE_NODE: true is refused with REDIS_URL (several nodes need the database leases)');
  const adminClaim = parseAdminClaim(e.ADMIN_CLAIM, problems);
  const serverSecret = e.SERVER_SECRET
    ? { value: e.SERVER_SECRET, source: 'SERVER_SECRET' as const }
    : e.AUTH_JWT_SECRET
      ? { value: e.AUTH_JWT_SECRET, source: 'AUTH_JWT_SECRET' as const }
      : e.AUTH_SERVICE_TOKEN
        ? { value: e.AUTH_SERVICE_TOKEN, source: 'AUTH_SERVICE_TOKEN' as const }
        : { value: 'development only: not a secret', source: 'development' as const };
  if (e.SERVER_SECRET && Buffer.byteLength(e.SERVER_SECRET) < 32) problems.push('SERVER_SECRET: must be at least 32 bytes long');
  if (prod && serverSecret.source === 'development')
    problems.push(
      'SERVER_SECRET: required when NODE_ENV=production without AUTH_JWT_SECRET or AUTH_SERVICE_TOKEN (it keys cursor tags and cluster bus signatures; the same value on every node)',
    );
  if (e.WEB_PUBSUB_CONNECTION_STRING) {
    const wps = parseWebPubSubConnectionString(e.WEB_PUBSUB_CONNECTION_STRING);
    if ('error' in wps) problems.push(`WEB_PUBSUB_CONNECTION_STRING: ${wps.error}`);
    else if (prod && !wps.endpoint.startsWith('https:')) problems.push('WEB_PUBSUB_CONNECTION_STRING: the Endpoint must be https:// in production');
  }
  if (e.SYNC_RULES_FILE && !fs.existsSync(e.SYNC_RULES_FILE)) problems.push(`SYNC_RULES_FILE: file not found: ${e.SYNC_RULES_FILE}`);
  if (problems.length) throw new ConfigError(problems);

  return {
    env: e.NODE_ENV,
    isProduction: prod,
    serverSecret,
    server: {
      port: e.PORT,
      host: e.HOST,
      corsOrigins: e.ALLOWED_ORIGINS && e.ALLOWED_ORIGINS.length && !e.ALLOWED_ORIGINS.includes('*') ? e.ALLOWED_ORIGINS : '*',
      trustProxy: e.TRUST_PROXY > 0,
      proxyHops: e.TRUST_PROXY,
      trustedProxies: e.TRUSTED_PROXIES ?? [],
      logLevel: e.LOG_LEVEL,
      logPretty: e.LOG_PRETTY ?? false,
      shutdownGraceMs: e.SHUTDOWN_GRACE_MS,
      apiDocs: e.API_DOCS,
    },
    mongodb: {
      uri: e.MONGODB_URI,
      poolSize: e.MONGODB_POOL_SIZE,
      socketTimeoutMS: e.MONGODB_SOCKET_TIMEOUT_MS,
      queryMaxTimeMS: e.QUERY_MAX_TIME_MS,
      dataDir: path.resolve(e.DATA_DIR),
      ferretdbBin: e.FERRETDB_BIN,
    },
    auth: {
      mode: authMode,
      jwtSecret: e.AUTH_JWT_SECRET,
      jwksUrl: e.AUTH_JWKS_URL,
      issuer: e.AUTH_JWT_ISSUER,
      audience: e.AUTH_JWT_AUDIENCE,
      serviceToken: e.AUTH_SERVICE_TOKEN,
      adminUserIds: e.ADMIN_USER_IDS ?? [],
      adminClaim,
      tokenExpiryGraceMs: e.TOKEN_EXPIRY_GRACE_MS,
      jwksCacheMaxAgeMs: e.AUTH_JWKS_CACHE_MAX_AGE_MS,
      jwksCooldownMs: e.AUTH_JWKS_COOLDOWN_MS,
      jwksTimeoutMs: e.AUTH_JWKS_TIMEOUT_MS,
    },
    limits: {
      maxConnectionsPerUser: e.MAX_CONNECTIONS_PER_USER ?? (prod ? 10 : 100),
      maxConnectionsPerIp: e.MAX_CONNECTIONS_PER_IP ?? (prod ? 50 : 500),
      maxConnections: e.MAX_CONNECTIONS,
      joinTimeoutMs: e.JOIN_TIMEOUT_MS,
      nodeLeaseMs: e.LIMITS_NODE_LEASE_MS,
      rateLimitMax: e.SYNC_RATE_LIMIT_MAX,
      rateLimitWindowMs: e.SYNC_RATE_LIMIT_WINDOW_MS,
      rateLimitDisabled: e.RATE_LIMIT_DISABLED ?? !prod,
      httpRateLimitMax: e.HTTP_RATE_LIMIT_MAX,
      httpRateLimitWindowMs: e.HTTP_RATE_LIMIT_WINDOW_MS,
      maxChangeBytes: e.MAX_CHANGE_BYTES,
      maxBatchSize: e.MAX_BATCH_SIZE,
      maxHttpBufferSize: e.SOCKET_MAX_HTTP_BUFFER_SIZE ?? Math.max(1024 * 1024, e.MAX_CHANGE_BYTES * 4 + 64 * 1024),
      maxSocketBufferBytes: e.MAX_SOCKET_BUFFER_BYTES,
      queryMatchBudget: e.QUERY_MATCH_BUDGET,
      readRateLimitMax: e.READ_RATE_LIMIT_MAX,
      readRateLimitWindowMs: e.READ_RATE_LIMIT_WINDOW_MS,
      maxSubscriptionsPerSocket: e.MAX_SUBSCRIPTIONS_PER_SOCKET,
      maxConcurrentBootstraps: e.MAX_CONCURRENT_BOOTSTRAPS,
      bootstrapBufferBytes: e.BOOTSTRAP_BUFFER_BYTES,
      bootstrapDrainTimeoutMs: e.BOOTSTRAP_DRAIN_TIMEOUT_MS,
    },
    sync: {
      conflictStrategy: e.CONFLICT_STRATEGY,
      maxClockSkewMs: e.MAX_CLOCK_SKEW_MS,
      broadcastToSender: e.BROADCAST_TO_SENDER,
      bootstrapPageSize: e.BOOTSTRAP_PAGE_SIZE,
      feedReadAhead: e.FEED_READ_AHEAD,
      changeRetentionDays: e.CHANGE_RETENTION_DAYS,
      retentionSweepIntervalMs: e.RETENTION_SWEEP_INTERVAL_MS,
      rulesFile: e.SYNC_RULES_FILE,
      schemasFile: e.SYNC_SCHEMAS_FILE,
      lockTtlMs: e.SYNC_LOCK_TTL_MS,
      deliveryPollMs: e.DELIVERY_POLL_INTERVAL_MS,
      // the embedded database is this process's child: no other node can reach it unless told so
      singleNode: e.SYNC_SINGLE_NODE ?? (!e.MONGODB_URI && !e.REDIS_URL),
    },
    scale: {
      redisUrl: e.REDIS_URL,
      redisChannelPrefix: e.REDIS_CHANNEL_PREFIX,
      redisMaxMessageBytes: e.REDIS_MAX_MESSAGE_BYTES,
      webPubSubConnectionString: e.WEB_PUBSUB_CONNECTION_STRING,
      webPubSubHub: e.WEB_PUBSUB_HUB_NAME,
    },
  };
}
