/**
 * containerd's task events as a test reads them: envelopes from the harness's gRPC
 * subscription, decoded with containerd's own protos, reduced to one container.
 */
import { decodeAny, type Envelope } from '../harness/index.js';

/** One task event of one container, in the order containerd delivered it. */
export interface TaskEvent {
  /** Position in the subscription's stream (comparable across containers). */
  readonly index: number;
  readonly topic: string;
  /** The process the event is about: the exec id, or the container id for the init. */
  readonly processId: string;
  readonly pid: number | undefined;
  readonly exitStatus: number | undefined;
  readonly fields: Readonly<Record<string, unknown>>;
}

/** Decodes the `/tasks/...` envelopes of one container, in stream order. */
export function taskEventsOf(received: readonly Envelope[], containerId: string): TaskEvent[] {
  const events: TaskEvent[] = [];
  received.forEach((envelope, index) => {
    if (!envelope.topic.startsWith('/tasks/') || envelope.event === null) return;
    let fields: Record<string, unknown>;
    try {
      fields = decodeAny(envelope.event);
    } catch {
      return;
    }
    if (fields['container_id'] !== containerId) return;
    const processId = stringField(fields, 'exec_id') ?? stringField(fields, 'id') ?? containerId;
    events.push({
      index,
      topic: envelope.topic,
      processId: processId === '' ? containerId : processId,
      pid: numberField(fields, 'pid'),
      exitStatus: numberField(fields, 'exit_status'),
      fields,
    });
  });
  return events;
}

/** Whether an envelope is `topic` for this container (and, when given, this process). */
export function isTaskEvent(topic: string, containerId: string, processId?: string): (envelope: Envelope) => boolean {
  return (envelope) => {
    if (envelope.topic !== topic || envelope.event === null) return false;
    const [event] = taskEventsOf([envelope], containerId);
    return event !== undefined && (processId === undefined || event.processId === processId);
  };
}

/** The first event with this topic (and process), or undefined. */
export function firstEvent(events: readonly TaskEvent[], topic: string, processId?: string): TaskEvent | undefined {
  return events.find((e) => e.topic === topic && (processId === undefined || e.processId === processId));
}

function stringField(fields: Record<string, unknown>, name: string): string | undefined {
  const value = fields[name];
  return typeof value === 'string' && value !== '' ? value : undefined;
}

function numberField(fields: Record<string, unknown>, name: string): number | undefined {
  const value = fields[name];
  return typeof value === 'number' ? value : undefined;
}
