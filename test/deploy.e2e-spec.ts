/* Deployment files, validated offline (issue 13, issue 10 finding 6): the Helm chart (helm lint,
 * helm template | kubernetes-validate --strict against Kubernetes 1.30), the Dockerfile (hadolint)
 * and the compose files (docker-compose config), with the tools scripts/setup.sh --test installs
 * into .tools/ (and Debian's docker-compose). No cluster, no Docker engine, no download. Each
 * validator is also shown to fail on a file broken on purpose. */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { ConfigError, loadConfig } from '../src/config/config.loader';
import { envSchema } from '../src/config/config.schema';

const root = path.join(__dirname, '..');
const chart = path.join(root, 'deploy/helm/sync-server');
const allOptions = path.join(chart, 'ci/all-options-values.yaml');
const KUBE_VERSION = '1.30.0';
const HELM = path.join(root, '.tools/bin/helm');
const KUBE_VALIDATE = path.join(root, '.tools/venv/bin/kubernetes-validate');
const HADOLINT = path.join(root, '.tools/venv/bin/hadolint');
const PYTHON = path.join(root, '.tools/venv/bin/python');
const COMPOSE = ['/usr/bin/docker-compose', '/usr/local/bin/docker-compose'].find((p) => fs.existsSync(p)) ?? 'docker-compose';

interface Run {
  code: number | null;
  out: string;
}
function run(cmd: string, args: string[], opts: { input?: string; env?: Record<string, string>; cwd?: string } = {}): Run {
  const r = spawnSync(cmd, args, {
    cwd: opts.cwd ?? root,
    input: opts.input,
    encoding: 'utf8',
    timeout: 120_000,
    maxBuffer: 64 * 1024 * 1024,
    // nothing from the developer's shell leaks into the checks (compose interpolates the environment)
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: os.tmpdir(), HELM_CACHE_HOME: path.join(os.tmpdir(), 'helm-cache'), ...opts.env },
  });
  if (r.error) throw r.error;
  return { code: r.status, out: `${r.stdout ?? ''}${r.stderr ?? ''}` };
}
function ok(r: Run, what: string): string {
  if (r.code !== 0) throw new Error(`${what} failed (exit ${r.code}):\n${r.out}`);
  return r.out;
}
/** Every YAML document of a string, as JSON (PyYAML from the validators' venv: no npm dependency). */
function parseYamlDocs(text: string): any[] {
  const r = run(PYTHON, ['-c', 'import json,sys,yaml; print(json.dumps([d for d in yaml.safe_load_all(sys.stdin) if d is not None]))'], { input: text });
  return JSON.parse(ok(r, 'yaml parse'));
}

const missing = [HELM, KUBE_VALIDATE, HADOLINT, PYTHON].filter((p) => !fs.existsSync(p));
if (!fs.existsSync(COMPOSE) || spawnSync(COMPOSE, ['version']).status !== 0) missing.push('docker-compose');

describe('deployment files, validated offline', () => {
  let tmp: string;
  beforeAll(() => {
    if (missing.length) throw new Error(`missing validators: ${missing.join(', ')}; run 'bash scripts/setup.sh --test' (npm test does)`);
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'deploy-'));
  });
  afterAll(() => {
    if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
  });

  describe('Helm chart', () => {
    const template = (...extra: string[]) => ok(run(HELM, ['template', 'sync', chart, '--kube-version', KUBE_VERSION, ...extra]), 'helm template');
    const validate = (file: string) => run(KUBE_VALIDATE, ['--strict', '-k', KUBE_VERSION, '--no-warn', file]);

    it('passes helm lint --strict, with the default values and with every option on', () => {
      ok(run(HELM, ['lint', '--strict', chart, '--kube-version', KUBE_VERSION]), 'helm lint');
      ok(run(HELM, ['lint', '--strict', chart, '--kube-version', KUBE_VERSION, '-f', allOptions]), 'helm lint (all options)');
    });

    it('renders manifests that kubernetes-validate --strict accepts for Kubernetes 1.30 (defaults and all options)', () => {
      for (const [name, args] of [
        ['default', []],
        ['all', ['-f', allOptions]],
      ] as const) {
        const file = path.join(tmp, `${name}.yaml`);
        fs.writeFileSync(file, template(...args));
        const r = validate(file);
        expect({ code: r.code, out: r.out }).toEqual({ code: 0, out: expect.not.stringMatching(/ERROR|failed/i) });
        expect(r.out).toMatch(/passed for resource deployment\//);
      }
    });

    it('sets only environment variables that the config schema declares, and secrets only from the existing Secret', () => {
      const docs = parseYamlDocs(template('-f', allOptions));
      const kinds = docs.map((d) => d.kind).sort();
      expect(kinds).toEqual(
        ['ConfigMap', 'Deployment', 'HorizontalPodAutoscaler', 'Ingress', 'PodDisruptionBudget', 'Service', 'ServiceAccount', 'ServiceMonitor'].sort(),
      );
      const known = new Set(Object.keys(envSchema.shape));
      const deployment = docs.find((d) => d.kind === 'Deployment');
      const env: { name: string; value?: string; valueFrom?: any }[] = deployment.spec.template.spec.containers.flatMap((c: any) => c.env ?? []);
      expect(env.length).toBeGreaterThan(15);
      expect(env.map((e) => e.name).filter((n) => !known.has(n))).toEqual([]);
      expect(new Set(env.map((e) => e.name)).size).toBe(env.length);
      // credentials never inline: every one is a secretKeyRef into existingSecret
      for (const name of ['MONGODB_URI', 'AUTH_SERVICE_TOKEN', 'SERVER_SECRET', 'REDIS_URL', 'WEB_PUBSUB_CONNECTION_STRING']) {
        const e = env.find((x) => x.name === name);
        expect(e?.value).toBeUndefined();
        expect(e?.valueFrom?.secretKeyRef?.name).toBe('sync-server');
      }
      const byName = Object.fromEntries(env.filter((e) => e.value !== undefined).map((e) => [e.name, e.value]));
      expect(byName).toMatchObject({
        NODE_ENV: 'production',
        SYNC_RULES_FILE: '/etc/sync/rules.json',
        TRUST_PROXY: 'true',
        TRUSTED_PROXIES: '10.0.0.0/8',
        AUTH_JWKS_URL: 'https://login.example.com/.well-known/jwks.json',
        AUTH_JWT_ISSUER: 'https://login.example.com/',
        AUTH_JWT_AUDIENCE: 'sync-api',
        WEB_PUBSUB_HUB_NAME: 'sync',
        CONFLICT_STRATEGY: 'field',
      });
      // the rendered settings pass the server's own validation (secrets filled in as the Secret would)
      const rules = path.join(tmp, 'rules.json');
      const configMap = docs.find((d) => d.kind === 'ConfigMap');
      fs.writeFileSync(rules, configMap.data['rules.json']);
      // every secretKeyRef gets a value (as the Secret would hold), then the real-looking ones
      const fromSecret = Object.fromEntries(
        env.filter((e) => e.valueFrom?.secretKeyRef).map((e) => [e.name, `${e.name.toLowerCase()}-value-0123456789abcdef0123456789`]),
      );
      const config = loadConfig(
        {
          ...fromSecret,
          ...byName,
          SYNC_RULES_FILE: rules,
          MONGODB_URI: 'mongodb://db:27017/x',
          REDIS_URL: 'redis://redis:6379',
          WEB_PUBSUB_CONNECTION_STRING: 'Endpoint=https://x.webpubsub.azure.com;AccessKey=a2V5;Version=1.0;',
        },
        '/nonexistent-config-dir',
      );
      expect(config.isProduction).toBe(true);
      expect(config.server.shutdownGraceMs).toBe(25_000);
    });

    it('matches the drain: probes, preStop, grace period above SHUTDOWN_GRACE_MS; non-root, read-only; sticky ingress; ServiceMonitor on the service port', () => {
      const docs = parseYamlDocs(template('-f', allOptions));
      const pod = docs.find((d) => d.kind === 'Deployment').spec.template.spec;
      const c = pod.containers[0];
      expect(c.livenessProbe.httpGet.path).toBe('/health');
      expect(c.readinessProbe.httpGet.path).toBe('/ready');
      expect(c.startupProbe.httpGet.path).toBe('/ready');
      const graceMs = Number(c.env.find((e: any) => e.name === 'SHUTDOWN_GRACE_MS').value);
      const preStop = Number(c.lifecycle.preStop.exec.command[1]);
      expect(pod.terminationGracePeriodSeconds).toBeGreaterThan(preStop + graceMs / 1000);
      expect(pod.securityContext.runAsNonRoot).toBe(true);
      expect(c.securityContext).toMatchObject({ readOnlyRootFilesystem: true, allowPrivilegeEscalation: false, capabilities: { drop: ['ALL'] } });
      expect(pod.affinity.podAntiAffinity).toBeDefined();
      expect(c.resources.requests).toBeDefined();
      const ingress = docs.find((d) => d.kind === 'Ingress');
      expect(ingress.metadata.annotations['nginx.ingress.kubernetes.io/affinity']).toBe('cookie');
      const service = docs.find((d) => d.kind === 'Service');
      const monitor = docs.find((d) => d.kind === 'ServiceMonitor');
      expect(service.spec.ports.map((p: any) => p.name)).toContain(monitor.spec.endpoints[0].port);
      expect(monitor.spec.endpoints[0]).toMatchObject({ path: '/metrics', bearerTokenSecret: { name: 'sync-server', key: 'service-token' } });
      expect(monitor.spec.selector.matchLabels).toEqual(service.spec.selector);
    });

    it('mounts the rules given as a file (--set-file rules.json=...) as they are', () => {
      const file = path.join(root, 'config/rules.example.json');
      const docs = parseYamlDocs(template('--set-file', `rules.json=${file}`));
      expect(JSON.parse(docs.find((d) => d.kind === 'ConfigMap').data['rules.json'])).toEqual(JSON.parse(fs.readFileSync(file, 'utf8')));
    });

    it('refuses unsafe values (values.schema.json and template checks)', () => {
      const bad = (args: string[]) => run(HELM, ['template', 'sync', chart, '--kube-version', KUBE_VERSION, ...args]);
      expect(bad(['--set', 'allowedOrigins={*}']).code).not.toBe(0); // production refuses "*"
      expect(bad(['--set', 'env.MONGODB_URI=mongodb://inline']).code).not.toBe(0); // credentials only from the Secret
      expect(bad(['--set', 'auth.jwksUrl=https://idp/jwks']).code).not.toBe(0); // JWKS without issuer and audience
      expect(bad(['--set', 'redis.enabled=false']).code).not.toBe(0); // several replicas without the bus
      // JWKS with neither SERVER_SECRET nor the service token: the pods would refuse to start
      const jwksOnly = [
        '--set',
        'auth.jwksUrl=https://idp/jwks',
        '--set',
        'auth.issuer=https://idp/',
        '--set',
        'auth.audience=a',
        '--set',
        'secretKeys.jwtSecret=',
      ];
      expect(bad([...jwksOnly, '--set', 'secretKeys.serviceToken=']).code).not.toBe(0);
      expect(bad([...jwksOnly, '--set', 'secretKeys.serviceToken=', '--set', 'secretKeys.serverSecret=server-secret']).code).toBe(0);
      expect(bad(['--set', 'shutdown.graceMs=10']).code).not.toBe(0);
    });

    it('kubernetes-validate fails on a rendered manifest broken on purpose', () => {
      const out = path.join(tmp, 'rendered');
      ok(run(HELM, ['template', 'sync', chart, '--kube-version', KUBE_VERSION, '--output-dir', out]), 'helm template --output-dir');
      const file = path.join(out, 'sync-server/templates/deployment.yaml');
      const good = fs.readFileSync(file, 'utf8');
      expect(validate(file).code).toBe(0);
      // a number as a string, then an unknown field (strict)
      fs.writeFileSync(file, good.replace(/containerPort: 3000/, 'containerPort: "3000"'));
      const typeError = validate(file);
      expect(typeError.code).not.toBe(0);
      fs.writeFileSync(file, good.replace(/terminationGracePeriodSeconds:/, 'terminationGraceSeconds:'));
      expect(validate(file).code).not.toBe(0);
      // and helm lint fails on a broken template
      const brokenChart = path.join(tmp, 'chart');
      fs.cpSync(chart, brokenChart, { recursive: true });
      fs.appendFileSync(path.join(brokenChart, 'templates/service.yaml'), '\n{{- if .Values.service.port }}\n');
      expect(run(HELM, ['lint', brokenChart, '--kube-version', KUBE_VERSION]).code).not.toBe(0);
    });
  });

  describe('Dockerfile', () => {
    it('passes hadolint', () => {
      ok(run(HADOLINT, [path.join(root, 'Dockerfile')]), 'hadolint');
    });
    it('hadolint fails on a Dockerfile broken on purpose', () => {
      const file = path.join(tmp, 'Dockerfile');
      fs.writeFileSync(file, fs.readFileSync(path.join(root, 'Dockerfile'), 'utf8').replace('FROM node:20-bookworm-slim AS build', 'FROM node AS build'));
      const r = run(HADOLINT, [file]);
      expect(r.code).not.toBe(0);
      expect(r.out).toMatch(/DL3006/); // untagged base image
    });
  });

  describe('compose files', () => {
    /** docker-compose config with exactly these variables (an .env of the developer is not read). */
    const composeConfig = (file: string, vars: Record<string, string>) => {
      const envFile = path.join(tmp, `env-${Math.random().toString(36).slice(2)}`);
      fs.writeFileSync(
        envFile,
        Object.entries(vars)
          .map(([k, v]) => `${k}=${v}`)
          .join('\n') + '\n',
      );
      return run(COMPOSE, ['--env-file', envFile, '-f', file, 'config']);
    };
    const prodVars = { AUTH_JWT_SECRET: 'k'.repeat(48), ALLOWED_ORIGINS: 'https://app.example.com', SYNC_RULES_PATH: './config/rules.example.json' };
    const ports = (svc: any): string[] => (svc.ports ?? []).map((p: any) => (typeof p === 'string' ? p : `${p.host_ip ?? ''}:${p.published}:${p.target}`));

    it('docker-compose.yml refuses to start without the secrets and settings of .env', () => {
      for (const key of Object.keys(prodVars)) {
        const vars: Record<string, string> = { ...prodVars };
        delete (vars as Record<string, string>)[key];
        const r = composeConfig('docker-compose.yml', vars);
        expect(r.code).not.toBe(0);
        expect(r.out).toContain(`set ${key} in .env`);
      }
    });

    it('docker-compose.yml: production mode, rules mounted, two nodes behind a sticky load balancer, only the balancer published', () => {
      const [cfg] = parseYamlDocs(ok(composeConfig('docker-compose.yml', prodVars), 'docker-compose config'));
      const s = cfg.services;
      expect(Object.keys(s).sort()).toEqual(['lb', 'mongodb', 'redis', 'sync1', 'sync2']);
      expect(s.mongodb.image).toBe('mongo:7');
      for (const node of [s.sync1, s.sync2]) {
        expect(node.environment).toMatchObject({ NODE_ENV: 'production', SYNC_RULES_FILE: '/etc/sync/rules.json', TRUST_PROXY: 'true' });
        expect(node.environment.AUTH_MODE).toBeUndefined();
        expect(node.volumes.join(' ')).toMatch(/:\/etc\/sync\/rules\.json:ro/);
        expect(node.healthcheck.test.join(' ')).toContain('/ready');
        expect(ports(node)).toEqual([]);
        expect(node.read_only).toBe(true);
        // every variable given to the server is one it knows
        const known = new Set(Object.keys(envSchema.shape));
        expect(Object.keys(node.environment).filter((k) => !known.has(k))).toEqual([]);
      }
      for (const svc of ['mongodb', 'redis', 'lb']) expect(s[svc].healthcheck).toBeDefined();
      expect(ports(s.mongodb)).toEqual([]);
      expect(ports(s.redis)).toEqual([]);
      expect(ports(s.lb)).toHaveLength(1);
      const nginx = fs.readFileSync(path.join(root, 'deploy/compose/nginx.conf'), 'utf8');
      expect(nginx).toMatch(/upstream sync_nodes \{\s*ip_hash;\s*server sync1:3000[^;]*;\s*server sync2:3000/);
      // the balancer's address is the one trusted for X-Forwarded-For
      expect(s.sync1.environment.TRUSTED_PROXIES).toBe(s.lb.networks.backend.ipv4_address);
    });

    it("the compose nodes' environment passes the server's production checks, and a placeholder secret is refused", () => {
      const [cfg] = parseYamlDocs(ok(composeConfig('docker-compose.yml', prodVars), 'docker-compose config'));
      const env = { ...cfg.services.sync1.environment, SYNC_RULES_FILE: path.join(root, 'config/rules.example.json') };
      expect(loadConfig(env, '/nonexistent-config-dir').isProduction).toBe(true);
      const [placeholder] = parseYamlDocs(ok(composeConfig('docker-compose.yml', { ...prodVars, AUTH_JWT_SECRET: 'change-me' }), 'docker-compose config'));
      expect(() => loadConfig({ ...placeholder.services.sync1.environment, SYNC_RULES_FILE: env.SYNC_RULES_FILE }, '/nonexistent-config-dir')).toThrow(
        ConfigError,
      );
      expect(() => loadConfig({ ...placeholder.services.sync1.environment, SYNC_RULES_FILE: env.SYNC_RULES_FILE }, '/nonexistent-config-dir')).toThrow(
        /placeholder/,
      );
    });

    it('docker-compose.dev.yml publishes on 127.0.0.1 only', () => {
      const [cfg] = parseYamlDocs(ok(composeConfig('docker-compose.dev.yml', {}), 'docker-compose config (dev)'));
      const published = Object.values(cfg.services).flatMap((svc: any) => ports(svc));
      expect(published.length).toBeGreaterThan(0);
      for (const p of published) expect(p).toMatch(/^127\.0\.0\.1:/);
      expect(cfg.services.sync.environment.NODE_ENV).toBe('development');
    });

    it('docker-compose config fails on a compose file broken on purpose', () => {
      const broken = path.join(tmp, 'docker-compose.yml');
      const good = fs.readFileSync(path.join(root, 'docker-compose.yml'), 'utf8');
      fs.writeFileSync(broken, good);
      expect(composeConfig(broken, prodVars).code).toBe(0);
      fs.writeFileSync(broken, good.replace('    restart: unless-stopped\n', '    restart: unless-stopped\n    restartt: always\n'));
      const r = composeConfig(broken, prodVars);
      expect(r.code).not.toBe(0);
      expect(r.out).toMatch(/restartt/);
    });
  });
});
