import { describe, expect, it } from 'vitest';
import { CollectorError } from '../shared/http-errors';
import { checkCollectionName, checkDeploymentName } from '../shared/names';

function refusal(fn: () => unknown): CollectorError {
  try {
    fn();
  } catch (error) {
    if (error instanceof CollectorError) return error;
    throw error;
  }
  throw new Error('the name was accepted');
}

describe('names (SPEC §2)', () => {
  it.each(['abc', 'my-endpoint', 'Blue2', 'a'.repeat(32)])('takes the endpoint or deployment name %s', (name) => {
    expect(checkDeploymentName('endpoint', name)).toBe(name);
  });

  it.each(['ab', 'a'.repeat(33), '..', 'a/b', 'a%2Fb', 'with space', 'café', '1abc', 'abc-', 'a_b', ''])(
    'refuses the endpoint or deployment name %j with a 400 naming the part',
    (name) => {
      const error = refusal(() => checkDeploymentName('deployment', name));
      expect(error.status).toBe(400);
      expect(error.code).toBe('InvalidName');
      expect(error.path).toBe('deployment');
      expect(error.message).toContain('deployment name');
    },
  );

  it.each(['model_inputs', 'request', '_x', 'A1'])('takes the collection name %s', (name) => {
    expect(checkCollectionName(name)).toBe(name);
  });

  it.each(['1abc', 'a-b', 'a.b', 'x'.repeat(65), 'a/b', '', 'é'])('refuses the collection name %j', (name) => {
    const error = refusal(() => checkCollectionName(name));
    expect(error).toMatchObject({ status: 400, code: 'InvalidName', path: 'collection' });
  });
});
