/**
 * The copiers: output from the process's pipe (or pty master) into a sink, and
 * stdin from the client's fifo into the process.
 */
import type { Readable, Writable } from 'node:stream';
import type { Logger } from '../api.js';
import { hasErrno } from '../errors.js';
import type { OutputSink } from './output-sink.js';

/**
 * Copies `source` into `sink` until the source ends, with backpressure (a slow
 * reader slows the process down, as a pipe would). Resolves once the source ended
 * and, when this was the sink's last source, the sink's data reached its
 * destination. Never rejects:
 * - a read error ends the copy (EIO from a pty master is its end of file: the last
 *   slave fd closed);
 * - a write error is logged once and the rest of the output is read and dropped,
 *   so the process never blocks on a pipe nobody empties.
 */
export function copyOutput(source: Readable, sink: OutputSink, log: Logger, what: string): Promise<void> {
  sink.retain();
  return new Promise<void>((resolve) => {
    let done = false;
    const finish = (): void => {
      if (done) return;
      done = true;
      source.off('end', finish);
      source.off('close', finish);
      source.off('error', onSourceError);
      // A destroyed source is not unpiped by itself: its listeners would stay on a shared sink.
      source.unpipe(sink.stream);
      sink.stream.off('error', onSinkError);
      void sink.release().then(resolve);
    };
    const onSourceError = (err: Error): void => {
      if (!hasErrno(err, 'EIO')) log.warn({ err, stream: what }, 'reading process output failed');
      finish();
    };
    const onSinkError = (err: Error): void => {
      log.warn({ err, stream: what }, 'writing process output failed: the rest of it is dropped');
      source.unpipe(sink.stream);
      source.resume();
    };
    source.on('end', finish);
    source.on('close', finish);
    source.on('error', onSourceError);
    sink.stream.on('error', onSinkError);
    source.pipe(sink.stream, { end: false });
  });
}

/**
 * Copies the client's stdin fifo into the process's stdin pipe. At the fifo's end
 * (every writer closed, ours included: see ProcessIO.closeStdin) the pipe is
 * ended, so the process reads EOF. If the process closed its stdin (EPIPE), the
 * fifo is released too.
 */
export function copyStdin(source: Readable, target: Writable, log: Logger): void {
  target.on('error', (err: Error) => {
    log.debug({ err }, 'stdin of the process is closed; no more input is copied');
    source.destroy();
  });
  source.on('error', (err: Error) => {
    log.warn({ err }, 'reading the stdin fifo failed; closing the stdin of the process');
    target.end();
  });
  source.pipe(target);
}

/**
 * Copies the client's stdin fifo into a pty master. At the fifo's end the terminal
 * is hung up once the input was written (`hangUp`): a pty has no end of file for
 * its input, and the Go shim closes the console there too (runc/platform.go
 * CopyConsole), so the process gets SIGHUP as when a terminal closes.
 */
export function copyTerminalInput(source: Readable, master: Writable, hangUp: () => void, log: Logger): void {
  const onEnd = (): void => {
    if (master.destroyed) {
      hangUp();
      return;
    }
    // Writes complete in order: this callback runs once everything before it was written.
    master.write(Buffer.alloc(0), hangUp);
  };
  source.on('end', onEnd);
  source.on('error', (err: Error) => {
    log.warn({ err }, 'reading the stdin fifo failed; hanging up the terminal');
    onEnd();
  });
  // Errors of the master are the output copier's to report.
  master.on('close', () => source.destroy());
  source.pipe(master, { end: false });
}
