import { existsSync, readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import type { z } from 'zod';
import { configSchema, type Config } from './config-schema.js';

/** The default config file, read from the working directory when present. */
export const DEFAULT_CONFIG_PATH = 'switchboard.config.json';

/** A config that cannot be used; `problems` holds one readable line per problem (path: expectation). */
export class ConfigError extends Error {
  readonly problems: string[];
  constructor(problems: string[]) {
    super(`invalid configuration:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
    this.problems = problems;
  }
}

export interface LoadConfigOptions {
  /** `--config PATH`; when given the file must exist. */
  path?: string;
  env?: NodeJS.ProcessEnv;
}

/** Reads, overrides from the environment, validates and freezes the configuration. Throws `ConfigError`. */
export function loadConfig(options: LoadConfigOptions = {}): Config {
  const env = options.env ?? process.env;
  const path = options.path ?? DEFAULT_CONFIG_PATH;
  let raw: unknown = {};
  if (options.path !== undefined || existsSync(path)) {
    raw = readJsonFile(path);
  }
  try {
    return parseConfig(applyEnvOverrides(raw, env));
  } catch (error) {
    // A token from the environment is invisible in the file: say where the refused one came from.
    if (!(error instanceof ConfigError) || !env.SWITCHBOARD_TOKEN) throw error;
    throw new ConfigError(error.problems.map((line) => line.replace(/^auth\.tokens\.0: /, 'auth.tokens.0 (SWITCHBOARD_TOKEN): ')));
  }
}

/** Validates a raw config object (already merged with env overrides). Throws `ConfigError`. */
export function parseConfig(raw: unknown): Config {
  const parsed = configSchema.safeParse(raw);
  if (!parsed.success) throw new ConfigError(formatIssues(parsed.error.issues));
  const problems = crossCheck(parsed.data);
  if (problems.length > 0) throw new ConfigError(problems);
  return deepFreeze(parsed.data);
}

function readJsonFile(path: string): unknown {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? 'unreadable';
    throw new ConfigError([`${path}: cannot read the file (${code})`]);
  }
  try {
    return JSON.parse(text);
  } catch (error) {
    throw new ConfigError([`${path}: not valid JSON (${(error as Error).message})`]);
  }
}

function applyEnvOverrides(raw: unknown, env: NodeJS.ProcessEnv): unknown {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) return raw;
  const config = structuredClone(raw) as Record<string, Record<string, unknown> | undefined>;
  const section = (name: string): Record<string, unknown> => {
    const existing = config[name];
    if (typeof existing === 'object' && existing !== null) return existing;
    const created: Record<string, unknown> = {};
    config[name] = created;
    return created;
  };
  if (env.DATABASE_URL) section('database').url = env.DATABASE_URL;
  if (env.SWITCHBOARD_PORT) section('server').port = Number(env.SWITCHBOARD_PORT);
  if (env.SWITCHBOARD_TOKEN) section('auth').tokens = [env.SWITCHBOARD_TOKEN];
  if (env.SYNOLOGY_TOKEN || env.SYNOLOGY_INCOMING_URL) {
    const synology = section('synology');
    if (env.SYNOLOGY_TOKEN) synology.token = env.SYNOLOGY_TOKEN;
    if (env.SYNOLOGY_INCOMING_URL) synology.incomingUrl = env.SYNOLOGY_INCOMING_URL;
  }
  return config;
}

function formatIssues(issues: z.core.$ZodIssue[]): string[] {
  return issues.map((issue) => {
    const where = issue.path.length > 0 ? issue.path.join('.') : '(root)';
    if (issue.code === 'unrecognized_keys') {
      return `${where === '(root)' ? '' : `${where}.`}${issue.keys.join(', ')}: unknown key, expected one of the documented keys`;
    }
    return `${where}: ${issue.message}`;
  });
}

const LOOPBACK_HOSTS = new Set(['localhost', '127.0.0.1', '::1', '[::1]']);

function isLoopback(host: string): boolean {
  return LOOPBACK_HOSTS.has(host) || (isIP(host) === 4 && host.startsWith('127.'));
}

/** Host of a URL without IPv6 brackets, lower-cased. */
function hostOf(value: string): string {
  return new URL(value).hostname.replace(/^\[|\]$/g, '').toLowerCase();
}

/** True when `host` matches an `egress.allowHosts` entry: exact, or `*.example.org` for subdomains. */
export function hostAllowed(host: string, allowHosts: readonly string[]): boolean {
  const h = host.replace(/^\[|\]$/g, '').toLowerCase();
  return allowHosts.some((entry) => {
    const e = entry.replace(/^\[|\]$/g, '').toLowerCase();
    return e.startsWith('*.') ? h.endsWith(e.slice(1)) : h === e;
  });
}

function crossCheck(config: Config): string[] {
  const problems: string[] = [];
  const names = Object.keys(config.backends);
  const known = `one of the configured backends (${names.join(', ') || 'none'})`;
  if (names.length === 0) problems.push('backends: expected at least one backend');
  for (const role of ['classifier', 'reasoner'] as const) {
    const name = config.roles[role];
    if (!(name in config.backends)) problems.push(`roles.${role}: "${name}" is not a backend, expected ${known}`);
  }
  for (const [mode, name] of Object.entries(config.modes)) {
    if (mode === 'auto') problems.push('modes.auto: "auto" is reserved for the classifier pipeline');
    if (!(name in config.backends)) problems.push(`modes.${mode}: "${name}" is not a backend, expected ${known}`);
  }

  const outbound: Array<[string, string | null | undefined]> = [];
  for (const [name, backend] of Object.entries(config.backends)) {
    outbound.push([`backends.${name}.baseUrl`, backend.baseUrl], [`backends.${name}.statusUrl`, backend.statusUrl]);
  }
  outbound.push(['tools.calendar.url', config.tools.calendar?.url], ['tools.email.url', config.tools.email?.url]);
  outbound.push(['synology.incomingUrl', config.synology?.incomingUrl]);
  for (const [where, value] of outbound) {
    if (!value) continue;
    const host = hostOf(value);
    if (!hostAllowed(host, config.egress.allowHosts)) {
      problems.push(`${where}: host "${host}" is not in egress.allowHosts, expected one of ${config.egress.allowHosts.join(', ')}`);
    }
  }

  if (config.auth.tokens.length === 0 && !isLoopback(config.server.host)) {
    problems.push(
      `auth.tokens: expected at least one token when server.host is "${config.server.host}" (no auth is only allowed on loopback)`,
    );
  }
  return problems;
}

function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null) {
    for (const child of Object.values(value)) deepFreeze(child);
    Object.freeze(value);
  }
  return value;
}
