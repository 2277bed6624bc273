import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';

/**
 * Deployment keys. An ingest key lets a model endpoint write one deployment's collections; a read key lets a
 * monitor read them. Keys are 256 random bits, shown once and stored only as SHA-256 hashes: for secrets of
 * that entropy a fast hash is enough, and it keeps the per-request check cheap.
 */
export type KeyKind = 'ingest' | 'read';

export interface KeyHashes {
  ingest: string;
  read: string;
}

export interface IssuedKeys {
  ingestKey: string;
  readKey: string;
}

const prefixes: Record<KeyKind, string> = { ingest: 'mdc_ingest_', read: 'mdc_read_' };

export function generateKey(kind: KeyKind): string {
  return prefixes[kind] + randomBytes(32).toString('base64url');
}

export function issueKeys(): IssuedKeys {
  return { ingestKey: generateKey('ingest'), readKey: generateKey('read') };
}

/** Lowercase hex SHA-256 of the key's UTF-8 bytes. */
export function hashKey(key: string): string {
  return createHash('sha256').update(key, 'utf8').digest('hex');
}

export function hashesOf(keys: IssuedKeys): KeyHashes {
  return { ingest: hashKey(keys.ingestKey), read: hashKey(keys.readKey) };
}

/** Compares two hex digests in constant time. */
export function hashesEqual(a: string, b: string): boolean {
  const left = Buffer.from(a, 'hex');
  const right = Buffer.from(b, 'hex');
  return left.length === right.length && left.length > 0 && timingSafeEqual(left, right);
}

/**
 * Hashes of keys that have verified, so that a deployment's steady stream of calls does not hash its key each
 * time. Only keys that matched are kept, so callers sending random keys cannot grow it; it is a memo of
 * `hashKey`, and the comparison with the stored hash is still made, in constant time, on every call.
 */
const verifiedHashes = new Map<string, string>();
const maxVerifiedHashes = 1000;

/** True when `presented` is the deployment's key of that kind. */
export function verifyKey(kind: KeyKind, hashes: KeyHashes, presented: string | null | undefined): boolean {
  if (!presented) return false;
  const known = verifiedHashes.get(presented);
  const hash = known ?? hashKey(presented);
  const ok = hashesEqual(hash, hashes[kind]);
  if (ok && known === undefined) {
    if (verifiedHashes.size >= maxVerifiedHashes) verifiedHashes.clear();
    verifiedHashes.set(presented, hash);
  }
  return ok;
}

/** True when `presented` is the admin key (MDC_ADMIN_KEY); compared in constant time over digests. */
export function isAdminKey(adminKey: string, presented: string | null | undefined): boolean {
  if (!presented) return false;
  return hashesEqual(hashKey(presented), hashKey(adminKey));
}

/** The header that carries a deployment key (ingest or read). */
export const keyHeader = 'x-mdc-key';
/** The header that carries the admin key. */
export const adminKeyHeader = 'x-mdc-admin-key';
