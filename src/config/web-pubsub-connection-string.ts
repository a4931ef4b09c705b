/**
 * An Azure Web PubSub connection string: `Endpoint=https://<name>.webpubsub.azure.com;AccessKey=<key>;Version=1.0;`
 * (`Port=<n>` optional). Pure; used by the config check and by the Azure integration.
 */
export interface WebPubSubConnection {
  /** `https://host[:port]`, without a trailing slash */
  endpoint: string;
  accessKey: string;
}

const MAX_LENGTH = 2048;

/** Parses the connection string, or returns why it cannot be used. */
export function parseWebPubSubConnectionString(value: string): WebPubSubConnection | { error: string } {
  if (value.length > MAX_LENGTH) return { error: `longer than ${MAX_LENGTH} characters` };
  const fields = new Map<string, string>();
  for (const part of value.split(';')) {
    if (!part.trim()) continue;
    const eq = part.indexOf('=');
    if (eq <= 0) return { error: 'expected Key=Value pairs separated by ";"' };
    fields.set(part.slice(0, eq).trim().toLowerCase(), part.slice(eq + 1).trim());
  }
  const endpoint = fields.get('endpoint');
  const accessKey = fields.get('accesskey');
  if (!endpoint) return { error: 'Endpoint=https://<name>.webpubsub.azure.com is missing' };
  let url: URL;
  try {
    url = new URL(endpoint);
  } catch {
    return { error: 'Endpoint is not a URL' };
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') return { error: 'Endpoint must be an http(s) URL' };
  if (!accessKey) return { error: 'AccessKey is missing (tokens are signed with it; managed identity is not supported)' };
  const port = fields.get('port');
  if (port !== undefined && !/^\d{1,5}$/.test(port)) return { error: 'Port must be a number' };
  if (port) url.port = port;
  return { endpoint: url.origin, accessKey };
}
