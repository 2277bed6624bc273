import { randomUUID } from 'node:crypto';

/**
 * What ties the inputs of one scoring call to its outputs. Pass the context returned by the inputs' `collect`
 * to the outputs' `collect`, as with azureml-ai-monitoring.
 */
export interface CorrelationContext {
  getId(): string;
  getHeaders(): Record<string, string>;
}

export class BasicCorrelationContext implements CorrelationContext {
  readonly id: string;
  readonly headers: Record<string, string>;

  constructor(id?: string, headers: Record<string, string> = {}) {
    this.id = id === undefined || id === '' ? randomUUID() : id;
    this.headers = headers;
  }

  getId(): string {
    return this.id;
  }

  getHeaders(): Record<string, string> {
    return this.headers;
  }
}
