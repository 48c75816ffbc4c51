import type { Config, FullConfig } from './core.js';

export declare function defaultConfig(): Required<Config>;
/** Fills defaults and validates. @throws ConfigError */
export declare function makeConfig(partial?: Config): FullConfig;
export declare function maxSends(config: FullConfig): number;

export declare class ConfigError extends Error {
  readonly kind: 'Type' | 'NoWaiters' | 'NoRefreshAttempts' | 'ZeroRefreshTimeout' | 'AbandonBeforeTimeout' | 'BackoffInverted';
}
