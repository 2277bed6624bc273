import { existsSync, readFileSync } from 'node:fs';

type Env = Record<string, string | undefined>;

export class AppSettingError extends Error {
  readonly code = 'MissingAppSetting';
  constructor(
    readonly setting: string,
    message: string,
  ) {
    super(message);
    this.name = 'AppSettingError';
  }
}

/**
 * Copies local.settings.json's `Values` into the environment for the names not already set, as `func start`
 * does: a value set outside (a test, CI, a shell) wins over the file. Returns the names it set.
 */
export function loadLocalSettings(file: string, env: Env = process.env): string[] {
  if (!existsSync(file)) return [];
  const parsed = JSON.parse(readFileSync(file, 'utf8')) as { Values?: Record<string, unknown> };
  const set: string[] = [];
  for (const [name, value] of Object.entries(parsed.Values ?? {})) {
    if (env[name] !== undefined || value === null || value === undefined) continue;
    env[name] = String(value);
    set.push(name);
  }
  return set;
}

/** Resolves `%NAME%` binding expressions from app settings, as the host does for trigger options. */
export function resolveAppSettings(text: string, env: Env = process.env): string {
  return text.replace(/%([^%]+)%/g, (_, name: string) => {
    const value = env[name];
    if (value === undefined || value === '') {
      throw new AppSettingError(name, `app setting ${name} (used as %${name}%) is not set`);
    }
    return value;
  });
}
