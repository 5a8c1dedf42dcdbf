/**
 * Whether CRIU can checkpoint on this host, asked of CRIU itself (`criu check`), so a
 * checkpoint test that cannot run says exactly why instead of pretending.
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';

const CRIU_PATHS = ['/usr/sbin/criu', '/usr/bin/criu', '/sbin/criu'];

/**
 * Runs `criu check`.
 * @returns undefined when it passes, else the reason: its exit status and error lines.
 */
export function criuProblem(): string | undefined {
  const criu = CRIU_PATHS.find((path) => existsSync(path));
  if (criu === undefined) return `criu is not installed (looked in ${CRIU_PATHS.join(', ')})`;
  const result = spawnSync(criu, ['check'], { encoding: 'utf8', timeout: 30_000 });
  if (result.error !== undefined) return `${criu} check could not run: ${result.error.message}`;
  if (result.status === 0) return undefined;
  const lines = `${result.stdout}${result.stderr}`
    .trim()
    .split('\n')
    .filter((line) => line.trim() !== '');
  return `\`${criu} check\` exited ${result.status ?? result.signal ?? '?'}: ${lines.join(' / ')}`;
}
