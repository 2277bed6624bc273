import { readFileSync } from 'node:fs';
import path from 'node:path';

export interface HubConfig {
  name: string;
  /** Default 4, as a new Event Hub on the Standard tier. */
  partitionCount?: number;
  /** `$Default` always exists. */
  consumerGroups?: string[];
}

export interface HubDefinition {
  name: string;
  partitionIds: string[];
  consumerGroups: Set<string>;
}

export const defaultConfigFile = path.join(__dirname, '..', 'emulator.config.json');

/** Reads the hubs from a JSON file shaped `{"hubs": [...]}`. */
export function readHubConfig(file: string = defaultConfigFile): HubConfig[] {
  const parsed = JSON.parse(readFileSync(file, 'utf8')) as { hubs?: unknown };
  if (!Array.isArray(parsed.hubs)) throw new Error(`${file}: "hubs" must be an array`);
  return parsed.hubs as HubConfig[];
}

/** Validates and fills in defaults, so a typo in the config stops the start instead of failing a link later. */
export function defineHubs(hubs: HubConfig[]): Map<string, HubDefinition> {
  const defined = new Map<string, HubDefinition>();
  for (const hub of hubs) {
    if (typeof hub.name !== 'string' || !/^[A-Za-z0-9][A-Za-z0-9._-]{0,255}$/.test(hub.name)) {
      throw new Error(`emulator config: invalid hub name ${JSON.stringify(hub.name)}`);
    }
    const count = hub.partitionCount ?? 4;
    if (!Number.isInteger(count) || count < 1 || count > 1024) {
      throw new Error(`emulator config: hub ${hub.name}: partitionCount must be an integer from 1 to 1024`);
    }
    const key = hub.name.toLowerCase();
    if (defined.has(key)) throw new Error(`emulator config: hub ${hub.name} is defined twice`);
    defined.set(key, {
      name: hub.name,
      partitionIds: Array.from({ length: count }, (_, i) => String(i)),
      consumerGroups: new Set(['$Default', ...(hub.consumerGroups ?? [])].map((g) => g.toLowerCase())),
    });
  }
  return defined;
}
