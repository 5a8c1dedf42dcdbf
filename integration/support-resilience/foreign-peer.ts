/**
 * A client of another uid, for the daemon's peer check (ttrpc's UnixSocketRequireSameUser):
 * node run under `setpriv` (util-linux) as nobody (65534), making one Task/State call on a
 * daemon socket and reporting what happened as one JSON line.
 *
 * The socket file is root-only (0600 in a 0600 directory), so a plain other-uid process
 * cannot even connect (EACCES). To reach the daemon's own check, the client may keep
 * CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH as ambient capabilities: it passes the file
 * permissions, yet SO_PEERCRED still reports uid 65534.
 */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

/** The uid and gid the foreign client runs as. */
export const FOREIGN_UID = 65534;

/** What the foreign client saw. */
export type ForeignOutcome =
  /** connect() failed (errno name, e.g. EACCES). */
  | { readonly kind: 'connect-failed'; readonly code: string }
  /** Connected, then the connection closed before any answer. */
  | { readonly kind: 'closed' }
  /** The daemon answered (it should not have). */
  | { readonly kind: 'answered'; readonly detail: string };

const TTRPC_MODULE = fileURLToPath(new URL('../../ttrpc/index.js', import.meta.url));

/** The client: ES module source run with `node --input-type=module -e`. */
function clientSource(socket: string, containerId: string): string {
  return `
import { connect as netConnect } from 'node:net';
import { createClient, isConnectionClosed } from ${JSON.stringify(TTRPC_MODULE)};
const print = (outcome) => { process.stdout.write(JSON.stringify(outcome) + '\\n'); };
const socket = netConnect(${JSON.stringify(socket)});
let connected = false;
socket.once('error', (error) => { if (connected) return; print({ kind: 'connect-failed', code: error.code ?? String(error) }); process.exit(0); });
socket.once('connect', async () => {
  connected = true;
  const client = createClient(socket);
  // Task/State { id }: field 1, a string.
  const id = Buffer.from(${JSON.stringify(containerId)});
  const request = Buffer.concat([Buffer.from([0x0a, id.length]), id]);
  try {
    const answer = await client.call('containerd.task.v2.Task', 'State', request, { timeoutMs: 10000 });
    print({ kind: 'answered', detail: 'State answered ' + answer.length + ' bytes' });
  } catch (error) {
    print(isConnectionClosed(error) ? { kind: 'closed' } : { kind: 'answered', detail: String(error) });
  }
  process.exit(0);
});
`;
}

/**
 * Runs the foreign client against `socket` and returns its outcome.
 * @param keepDacOverride pass the file permissions (see the module comment).
 * @throws Error when setpriv or node fail to run, or the client prints nothing parseable.
 */
export function callAsForeignUser(socket: string, containerId: string, keepDacOverride: boolean): Promise<ForeignOutcome> {
  const caps = keepDacOverride ? ['--inh-caps=+dac_override,+dac_read_search', '--ambient-caps=+dac_override,+dac_read_search'] : [];
  const args = [
    `--reuid=${FOREIGN_UID}`,
    `--regid=${FOREIGN_UID}`,
    '--clear-groups',
    ...caps,
    process.execPath,
    '--input-type=module',
    '-e',
    clientSource(socket, containerId),
  ];
  return new Promise((resolve, reject) => {
    const child = spawn('setpriv', args, { stdio: ['ignore', 'pipe', 'pipe'], cwd: '/' });
    let stdout = '';
    let stderr = '';
    const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.once('error', (error) => {
      clearTimeout(timer);
      reject(new Error(`cannot run setpriv (util-linux): ${error.message}`, { cause: error }));
    });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      try {
        resolve(JSON.parse(stdout.trim()) as ForeignOutcome);
      } catch {
        reject(new Error(`the foreign client (uid ${FOREIGN_UID}) exited with ${code ?? signal ?? '?'} and printed ${JSON.stringify(stdout)}; stderr: ${stderr}`));
      }
    });
  });
}
