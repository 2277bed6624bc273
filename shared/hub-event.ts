import { z } from 'zod';

/**
 * The message `collect` puts on Event Hubs and `append` turns into a line. It carries everything the line
 * needs, the blob target included, so `append` never looks up a deployment's configuration: a configuration
 * change cannot reroute events already accepted.
 *
 * The body is JSON. Partition key: `<endpoint>/<deployment>`, so one deployment's events stay in order.
 */

export const rollingRates = ['Minute', 'Hour', 'Day', 'Month', 'Year'] as const;

/** Where the rolled files of one collection go: the datastore's container and `data.path`'s path part. */
export const blobTargetSchema = z.object({
  container: z.string().min(3),
  /** No leading or trailing slash, e.g. `modelDataCollector/ep/blue/model_inputs`. */
  path: z.string().min(1),
  rollingRate: z.enum(rollingRates),
});

/**
 * The payload: JSON carried in the event, or bytes staged in the system container because they are not JSON
 * or do not fit in one event (Event Hubs takes at most 1 MB).
 */
export const payloadSchema = z.discriminatedUnion('kind', [
  z.object({ kind: z.literal('inline'), data: z.unknown() }),
  z.object({
    kind: z.literal('staged'),
    /** Blob name in the system container. */
    blob: z.string().min(1),
    contentType: z.string().min(1),
    bytes: z.number().int().nonnegative(),
    /** True when the bytes are JSON (they are inlined in the line when at most 4 MB), false for raw bytes. */
    json: z.boolean(),
  }),
]);

export const hubEventSchema = z.object({
  v: z.literal(1),
  id: z.string().uuid(),
  endpoint: z.string().min(1),
  deployment: z.string().min(1),
  collection: z.string().min(1),
  /** UTC, seconds precision, `Z`: `2024-03-05T18:16:25Z`. */
  time: z.string().regex(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$/),
  source: z.string(),
  type: z.string(),
  datacontenttype: z.string(),
  correlationid: z.string().min(1),
  xrequestid: z.string().min(1),
  modelversion: z.string(),
  collectdatatype: z.string(),
  agent: z.string(),
  target: blobTargetSchema,
  payload: payloadSchema,
  // Payload logging (request/response collections).
  path: z.string().optional(),
  method: z.string().optional(),
  statuscode: z.number().int().optional(),
  durationms: z.number().optional(),
  headers: z.record(z.string(), z.string()).optional(),
});

export type BlobTarget = z.infer<typeof blobTargetSchema>;
export type Payload = z.infer<typeof payloadSchema>;
export type HubEvent = z.infer<typeof hubEventSchema>;

export function partitionKeyOf(event: Pick<HubEvent, 'endpoint' | 'deployment'>): string {
  return `${event.endpoint}/${event.deployment}`;
}
