export { appendEvents, type AppendOptions, type AppendSummary, type TriggeredEvent } from './append-events';
export { RolledWriter, AppendConflictError, type RolledWriterOptions, type RolledFiles, type CommitInfo, type WriteOutcome } from './rolled-writer';
export { rolledFolder, rolledFolderPath, rolledFileName } from './rolled-path';
export { buildLine, contentRange, planLines } from './line';
export { decodeHubEvent } from './decode';
export { deadLetterFolder } from './dead-letter';
