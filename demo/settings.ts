import { resolve } from 'node:path';

/**
 * Where each part of the demo listens. One base port (DEMO_PORT_BASE, default 3000):
 *   base     Portcullis (public)        http://localhost:<base>
 *   base+1   Portcullis admin API       http://127.0.0.1:<base+1>
 *   base+2   demo directory             http://127.0.0.1:<base+2>
 *   base+3   demo bank API              http://127.0.0.1:<base+3>
 *   base+4   demo TPP web app           http://localhost:<base+4>
 * Every listener binds to 127.0.0.1: the demo is never reachable from the network.
 */
export interface DemoSettings {
  readonly dataDir: string;
  readonly logLevel: string;
  /** ACCESS_TOKEN_TTL passed through (e.g. 30 to watch the TPP refresh its access token) */
  readonly accessTokenTtl: string | undefined;
  readonly ports: { readonly portcullis: number; readonly admin: number; readonly directory: number; readonly bank: number; readonly tpp: number };
  readonly urls: {
    /** the issuer, as browsers and the TPP address it */
    readonly portcullis: string;
    readonly admin: string;
    readonly directory: string;
    readonly bank: string;
    readonly tpp: string;
  };
}

export class DemoSettingsError extends Error {
  override readonly name = 'DemoSettingsError';
}

type Env = Readonly<Record<string, string | undefined>>;

export const DIRECTORY_ISSUER = 'https://directory.demo';
export const HOST = '127.0.0.1';

export function demoSettings(env: Env): DemoSettings {
  const rawBase = env.DEMO_PORT_BASE?.trim() || '3000';
  if (!/^\d{1,5}$/.test(rawBase) || Number(rawBase) < 1 || Number(rawBase) > 65531) {
    throw new DemoSettingsError('DEMO_PORT_BASE: expected an integer between 1 and 65531 (the demo uses it and the four ports after it)');
  }
  const base = Number(rawBase);
  const logLevel = env.LOG_LEVEL?.trim() || 'warn';
  const ports = { portcullis: base, admin: base + 1, directory: base + 2, bank: base + 3, tpp: base + 4 };
  return {
    dataDir: resolve(env.DATA_DIR?.trim() || './data/demo'),
    logLevel,
    accessTokenTtl: env.ACCESS_TOKEN_TTL?.trim() || undefined,
    ports,
    urls: {
      portcullis: `http://localhost:${ports.portcullis}`,
      admin: `http://${HOST}:${ports.admin}`,
      directory: `http://${HOST}:${ports.directory}`,
      bank: `http://${HOST}:${ports.bank}`,
      tpp: `http://localhost:${ports.tpp}`,
    },
  };
}

/** The environment Portcullis is configured from (loadConfig): the demo's, nothing inherited. */
export function portcullisEnv(settings: DemoSettings): Record<string, string> {
  return {
    NODE_ENV: 'development',
    ISSUER: settings.urls.portcullis,
    PORT: String(settings.ports.portcullis),
    HOST,
    ADMIN_PORT: String(settings.ports.admin),
    ADMIN_HOST: HOST,
    DATA_DIR: settings.dataDir,
    LOG_LEVEL: settings.logLevel,
    SSA_ISSUER: DIRECTORY_ISSUER,
    SSA_JWKS_URI: `${settings.urls.directory}/jwks`,
    FETCH_ALLOW_PRIVATE_NETWORKS: 'true',
    ALLOW_LOOPBACK_REDIRECTS: 'true',
    ...(settings.accessTokenTtl === undefined ? {} : { ACCESS_TOKEN_TTL: settings.accessTokenTtl }),
  };
}
