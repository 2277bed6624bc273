import { badRequest, quote } from './http-errors';

/** Azure ML's rule for endpoint and deployment names: 3–32 characters (SPEC §2). */
export const endpointNamePattern = /^[a-zA-Z][a-zA-Z0-9-]{1,30}[a-zA-Z0-9]$/;
export const collectionNamePattern = /^[a-zA-Z_][a-zA-Z0-9_]{0,63}$/;

/** Collections reserved for payload logging: the raw HTTP request and response of the model endpoint. */
export const payloadCollections = ['request', 'response'] as const;
export type PayloadCollection = (typeof payloadCollections)[number];

/** Azure ML allows at most this many custom logging collections per deployment. */
export const maxCustomCollections = 5;

export function isPayloadCollection(collection: string): collection is PayloadCollection {
  return (payloadCollections as readonly string[]).includes(collection);
}

// Names become blob paths and partition keys, so anything off-pattern is refused before it reaches storage.
export function checkDeploymentName(kind: 'endpoint' | 'deployment', value: string | undefined): string {
  if (value === undefined || !endpointNamePattern.test(value)) {
    throw badRequest(
      'InvalidName',
      `${kind} name ${quote(value ?? '')} is invalid: use 3-32 ASCII letters, digits and hyphens, starting with a letter and not ending with a hyphen`,
      kind,
    );
  }
  return value;
}

export function checkCollectionName(value: string | undefined, path = 'collection'): string {
  if (value === undefined || !collectionNamePattern.test(value)) {
    throw badRequest(
      'InvalidName',
      `collection name ${quote(value ?? '')} is invalid: use 1-64 ASCII letters, digits and underscores, not starting with a digit`,
      path,
    );
  }
  return value;
}
